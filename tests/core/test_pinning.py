"""Pin hashing, diffs and the quarantine decision (core/pinning.py), without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bastion.core.compose import compose
from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.pinning import PinMemo, apply_pins, approve, definition_diff, definition_hash, reject

NOW = datetime(2026, 12, 5, tzinfo=UTC)
ECHO = {"name": "echo", "description": "Return the text.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}


def tool(name: str, definition: dict[str, Any], upstream: str = "fx") -> CatalogItem:
    return CatalogItem(upstream=upstream, kind="tool", key=name, gateway_name=f"{upstream}__{name}", definition=definition)


def test_the_hash_ignores_key_order_and_unpinned_fields_but_not_what_a_model_reads() -> None:
    reordered = {"inputSchema": ECHO["inputSchema"], "description": ECHO["description"], "name": "echo"}
    assert definition_hash("tool", ECHO) == definition_hash("tool", reordered)
    assert definition_hash("tool", ECHO) == definition_hash("tool", {**ECHO, "_meta": {"x": 1}, "icons": []})
    assert definition_hash("tool", ECHO) != definition_hash("tool", {**ECHO, "description": "Return the text!"})
    assert definition_hash("tool", ECHO) != definition_hash("tool", {**ECHO, "annotations": {"readOnlyHint": True}})
    assert definition_hash("tool", ECHO) != definition_hash("prompt", {**ECHO, "arguments": []})


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
