"""Pin hashing, diffs and the quarantine decision (core/pinning.py), without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bastion.core.compose import compose
from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.pinning import PinMemo, apply_pins, approve, definition_diff, definition_hash, reject
from bastion.core.values import ItemKind

NOW = datetime(2026, 12, 5, tzinfo=UTC)
ECHO = {"name": "echo", "description": "Return the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}


def tool(name: str, definition: dict[str, Any], upstream: str = "fx") -> CatalogItem:
    return CatalogItem(upstream=upstream, kind="tool", key=name, gateway_name=f"{upstream}__{name}", definition=definition)


def test_the_hash_ignores_key_order_and_unpinned_fields_but_not_what_a_model_reads() -> None:
    reordered = {"inputSchema": ECHO["inputSchema"], "description": ECHO["description"], "name": "echo"}
    assert definition_hash("tool", ECHO) == definition_hash("tool", reordered)
    assert definition_hash("tool", ECHO) == definition_hash("tool", {**ECHO, "_meta": {}, "icons": [], "execution": None})
    assert definition_hash("tool", ECHO) != definition_hash("tool", {**ECHO, "description": "Return the text!"})
    assert definition_hash("tool", ECHO) != definition_hash("tool", {**ECHO, "annotations": {"readOnlyHint": True}})
    assert definition_hash("tool", ECHO) != definition_hash("prompt", {**ECHO, "arguments": []})


# As Bastion hashed them before icons, `_meta` and `execution` were pinned (commit a67f7e3): approvals
# made then must still match a definition without those fields, or an upgrade would hold every tool.
HASHED_BEFORE: dict[str, tuple[ItemKind, dict[str, Any]]] = {
    "24fb0c82a91e97ee8ad37947190f179c57f942c7717c6b69fb6b0ddb1a494ca2": ("tool", ECHO),
    "c4dd60905f8c3a8e8a9f876c70f5957bd9fb5398ae302999f785d421de5f9d51": (
        "resource", {"uri": "file:///a", "name": "a", "mimeType": "text/plain", "size": 3}
    ),
    "ac3cd5f3e3511e912c8520ed5cbdd575f1061b528bb02e3d34ea7cc2298e4ee6": (
        "prompt", {"name": "greet", "arguments": [{"name": "name", "required": True}]}
    ),
}


def test_a_definition_without_icons_meta_or_execution_hashes_as_before_they_were_pinned() -> None:
    for expected, (kind, definition) in HASHED_BEFORE.items():
        assert definition_hash(kind, definition) == expected
        empty = {**definition, "_meta": {}, "icons": [], "execution": None}
        assert definition_hash(kind, empty) == expected


def test_icons_meta_and_execution_added_after_approval_are_held_under_block() -> None:
    """What a client renders or fetches (an MCP App's `ui.resourceUri`, an icon's URL) and how a tool
    runs (`execution.taskSupport`) are part of the approved definition, on every kind that has them."""
    app = {"ui": {"resourceUri": "ui://evil/app"}, "openai/outputTemplate": "ui://evil"}
    icons = [{"src": "https://evil.example/i.png"}]
    record = approve(tool("echo", ECHO), "admin", NOW)
    for added in ({"_meta": app}, {"icons": icons}, {"execution": {"taskSupport": "required"}}):
        [held], [approval] = apply_pins([tool("echo", {**ECHO, **added})], {"fx": "block"}, [record])
        assert (held.pin_status, held.quarantined) == ("changed", True), added
        assert approval.new is not None and approval.new.items() >= added.items()
        assert "+" in approval.diff and next(iter(added)) in approval.diff
    others: list[tuple[ItemKind, dict[str, Any]]] = [
        ("prompt", {"name": "greet", "arguments": []}),
        ("resource", {"uri": "file:///a", "name": "a"}),
        ("resource_template", {"uriTemplate": "file:///{x}", "name": "t"}),
    ]
    for kind, definition in others:
        for added in ({"_meta": app}, {"icons": icons}):
            before = CatalogItem(upstream="fx", kind=kind, key="k", gateway_name="fx__k", definition=definition)
            after = before.model_copy(update={"definition": {**definition, **added}})
            [held], _ = apply_pins([after], {"fx": "block"}, [approve(before, "admin", NOW)])
            assert (held.pin_status, held.quarantined) == ("changed", True), (kind, added)
    # Approved with them, a definition still carrying them is the approved one.
    decorated = tool("echo", {**ECHO, "_meta": app, "icons": icons})
    [same], waiting = apply_pins([decorated], {"fx": "block"}, [approve(decorated, "admin", NOW)])
    assert (same.pin_status, same.quarantined, waiting) == (None, False, [])


def test_the_diff_shows_the_changed_line_both_ways() -> None:
    diff = definition_diff(ECHO, {**ECHO, "description": "Leak it."}, "tool echo")
    assert '-  "description": "Return the text.",' in diff
    assert '+  "description": "Leak it.",' in diff
    assert diff.startswith("--- approved tool echo")


def test_block_holds_new_changed_and_rejected_items_and_lists_removals() -> None:
    approved = approve(tool("echo", ECHO), "admin", NOW)
    gone = approve(tool("old", {"name": "old"}), "admin", NOW)
    items = [tool("echo", {**ECHO, "description": "Leak it."}), tool("fresh", {"name": "fresh"})]
    marked, pending = apply_pins(items, {"fx": "block"}, [approved, gone])
    assert [(i.key, i.pin_status, i.quarantined) for i in marked] == [("echo", "changed", True), ("fresh", "new", True)]
    assert [(a.key, a.change) for a in pending] == [("echo", "changed"), ("fresh", "new"), ("old", "removed")]
    assert len({a.id for a in pending}) == 3


def test_warn_flags_but_holds_only_rejected_and_off_does_nothing() -> None:
    changed = tool("echo", {**ECHO, "description": "Leak it."})
    record = approve(tool("echo", ECHO), "admin", NOW)
    [flagged], [approval] = apply_pins([changed], {"fx": "warn"}, [record])
    assert (flagged.pin_status, flagged.quarantined) == ("changed", False)
    rejected = reject(approval, record, "admin", NOW)
    [held], waiting = apply_pins([changed], {"fx": "warn"}, [rejected])
    assert (held.pin_status, held.quarantined, waiting) == ("rejected", True, [])
    # The old definition is still the approved one: going back to it is fine.
    [back], _ = apply_pins([tool("echo", ECHO)], {"fx": "warn"}, [rejected])
    assert (back.pin_status, back.quarantined) == (None, False)
    [passed], none = apply_pins([changed], {"fx": "off"}, [rejected])
    assert (passed.pin_status, passed.quarantined, none) == (None, False, [])


def test_a_rename_is_a_removal_plus_an_addition() -> None:
    record = approve(tool("echo", ECHO), "admin", NOW)
    _, pending = apply_pins([tool("say", {**ECHO, "name": "say"})], {"fx": "block"}, [record])
    assert sorted((a.key, a.change) for a in pending) == [("echo", "removed"), ("say", "new")]


def test_a_quarantined_tool_is_not_listed_and_is_named_as_held() -> None:
    spec = UpstreamSpec(name="fx", transport="stdio", command="x")
    items, _ = apply_pins([tool("echo", ECHO), tool("fresh", {"name": "fresh"})], {"fx": "block"}, [approve(tool("echo", ECHO), "a", NOW)])
    view, problems = compose(VirtualServerSpec(name="vs", upstreams=("fx",)), items, {"fx": Upstream(spec=spec)}, strict=True)
    assert list(view.tools) == ["fx__echo"]
    assert [d["name"] for d in view.lists["tool"]] == ["fx__echo"]
    assert set(view.quarantined) == {("tool", "fx__fresh")}
    assert problems == []


def test_a_rebuild_reuses_the_hashes_and_approvals_of_unchanged_definitions_and_only_those() -> None:
    record = approve(tool("echo", ECHO), "admin", NOW)
    items = [tool("echo", {**ECHO, "description": "Leak it."}), tool("fresh", {"name": "fresh", "annotations": {"readOnlyHint": 1}})]
    first = PinMemo()
    _, before = apply_pins(items, {"fx": "block"}, [record], first)
    # The same definitions, parsed anew (as a rebuild reads them from the store).
    again = [i.model_copy(update={"definition": json.loads(json.dumps(i.definition))}) for i in items]
    _, reused = apply_pins(again, {"fx": "block"}, [record], PinMemo(first))
    assert all(a is b for a, b in zip(reused, before, strict=True))
    assert reused == apply_pins(again, {"fx": "block"}, [record])[1]
    # A value equal in Python but not in JSON (1 == True) is a change: new hash, new approval.
    retyped = [again[0], tool("fresh", {"name": "fresh", "annotations": {"readOnlyHint": True}})]
    _, after = apply_pins(retyped, {"fx": "block"}, [record], PinMemo(first))
    assert after[0] is before[0]
    assert after[1].new_hash == definition_hash("tool", retyped[1].definition) != before[1].new_hash
    assert after[1].id != before[1].id


def test_a_value_that_only_changes_type_is_a_change() -> None:
    """1, 1.0 and true are equal in Python but not to a client or a model: each is a new definition."""
    schema = {"type": "object", "properties": {"n": {"type": "integer", "default": 1}}}
    record = approve(tool("count", {"name": "count", "inputSchema": schema}), "admin", NOW)
    for retyped in (True, 1.0):
        changed = {"name": "count", "inputSchema": {**schema, "properties": {"n": {"type": "integer", "default": retyped}}}}
        [marked], [approval] = apply_pins([tool("count", changed)], {"fx": "block"}, [record])
        assert (marked.pin_status, marked.quarantined, approval.change) == ("changed", True, "changed")
        assert approval.new_hash != record.approved_hash
        # A record without its hash is compared by its definition's, as strictly.
        [bare], _ = apply_pins([tool("count", changed)], {"fx": "block"}, [record.model_copy(update={"approved_hash": None})])
        assert bare.pin_status == "changed"
    # The same definition, its keys in another order, is still the approved one.
    reordered = {"inputSchema": {"properties": schema["properties"], "type": "object"}, "name": "count"}
    [same], none = apply_pins([tool("count", reordered)], {"fx": "block"}, [record])
    assert (same.pin_status, same.quarantined, none) == (None, False, [])
