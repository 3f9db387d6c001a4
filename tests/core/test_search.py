"""BM25 tool search (core/search.py)."""

from __future__ import annotations

from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.search import ToolIndex
from bastion.core.snapshot import build_snapshot

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


def test_a_search_servers_index_is_built_with_its_snapshot_and_kept_with_its_view() -> None:
    upstream = Upstream(spec=UpstreamSpec(name="gh", transport="stdio", command="x", pin="off"))
    items = [
        CatalogItem(upstream="gh", kind="tool", key=d["name"], gateway_name=d["name"], definition=d) for d in DEFS
    ]
    specs = [
        VirtualServerSpec(name="found", upstreams=("gh",), discovery="search", prefix="never"),
        VirtualServerSpec(name="listed", upstreams=("gh",), prefix="never"),
    ]
    first = build_snapshot([upstream], items, specs)
    # Built in the rebuild's worker thread, not by the first search on the event loop.
    assert first.servers["found"]._search and not first.servers["listed"]._search
    assert [n for n, _ in first.servers["found"].tool_index().search("create issue")][0] == "gh__create_issue"
    again = build_snapshot([upstream], items, specs, previous=first)
    assert again.servers["found"].tool_index() is first.servers["found"].tool_index()
