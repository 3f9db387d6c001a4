"""BM25 tool search (core/search.py)."""

from __future__ import annotations

from bastion.core.search import ToolIndex

DEFS = [
    {"name": "gh__create_issue", "description": "Open a new issue in a repository.", "inputSchema": {"properties": {"repo": {}, "title": {}}}},
    {"name": "gh__list_issues", "description": "List the issues of a repository.", "inputSchema": {"properties": {"repo": {}}}},
    {"name": "fs__read_file", "description": "Read a file from disk.", "inputSchema": {"properties": {"path": {}}}},
    {"name": "mail__send", "description": "Send an email about an issue or anything else.", "inputSchema": {"properties": {"to": {}}}},
]
INDEX = ToolIndex([d["name"] for d in DEFS], DEFS)


def test_names_rank_above_descriptions_and_argument_names_count() -> None:
    ranked = [n for n, _ in INDEX.search("create issue")]
    assert ranked[0] == "gh__create_issue" and ranked.index("gh__list_issues") < ranked.index("mail__send")
    assert [n for n, _ in INDEX.search("path")] == ["fs__read_file"]


def test_unknown_and_stop_words_find_nothing_and_limits_hold() -> None:
    assert INDEX.search("the of a") == [] and INDEX.search("kubernetes") == []
    assert len(INDEX.search("issue repository", limit=1)) == 1


def test_the_callers_policy_filters_results_without_losing_the_rest() -> None:
    found = INDEX.search("issue", limit=2, allowed=lambda name: not name.startswith("gh__"))
    assert [n for n, _ in found] == ["mail__send"]
