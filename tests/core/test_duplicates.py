"""Duplicate scoring and grouping (core/duplicates.py), without I/O."""

from __future__ import annotations

from typing import Any

from bastion.core.duplicates import DuplicateIndex, duplicates_of, find_duplicates, words
from bastion.core.models import CatalogItem


def tool(upstream: str, name: str, description: str, args: dict[str, str]) -> CatalogItem:
    schema: dict[str, Any] = {"type": "object", "properties": {a: {"type": t} for a, t in args.items()}}
    definition = {"name": name, "description": description, "inputSchema": schema}
    return CatalogItem(upstream=upstream, kind="tool", key=name, gateway_name=f"{upstream}__{name}", definition=definition)


CATALOG = [
    tool("fs", "read_file", "Read the complete contents of a file from the file system.", {"path": "string"}),
    tool("fs", "list_directory", "List all files and directories in a given path.", {"path": "string"}),
    tool("mine", "getFileContents", "Get the full contents of a file on disk.", {"path": "string"}),
    tool("mine", "send_email", "Send an email message to a recipient.", {"to": "string", "body": "string"}),
    tool("other", "weather", "Forecast the weather for a city.", {"city": "string"}),
    tool("fs", "read_text_file", "Read the complete contents of a text file.", {"path": "string"}),
]


def test_words_split_every_naming_style() -> None:
    assert words("getFileContents") == ["get", "file", "contents"]
    assert words("list-directory.v2_x") == ["list", "directory", "v2", "x"]


def test_same_job_under_another_name_on_another_upstream_is_grouped_with_a_reason() -> None:
    groups = find_duplicates(CATALOG)
    assert [g.tools for g in groups] == [("fs__read_file", "mine__getFileContents")]
    group = groups[0]
    assert group.upstreams == ("fs", "mine") and group.score >= 0.62
    assert "names 67% alike" in group.reason  # read~get folded: read, file shared; contents not
    assert "input schemas share path" in group.reason


def test_tools_of_one_upstream_are_never_paired_and_unrelated_tools_never_are() -> None:
    pairs = DuplicateIndex(CATALOG).pairs()
    assert all(p.a.split("__")[0] != p.b.split("__")[0] for p in pairs)
    assert not any("weather" in p.a or "weather" in p.b or "send_email" in p.a + p.b for p in pairs)


def test_a_new_upstream_is_compared_with_the_rest_only() -> None:
    index = DuplicateIndex(CATALOG)
    found = duplicates_of(index, "mine")
    assert {frozenset((p.a, p.b)) for p in found} <= {
        frozenset(("mine__getFileContents", "fs__read_file")), frozenset(("mine__getFileContents", "fs__read_text_file"))
    }
    assert found
