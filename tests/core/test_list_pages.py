"""Cached list pages, shared policy views and the catalog search text give exactly what composing,
filtering and matching afresh give."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from bastion.core.catalog_text import CatalogText, matches
from bastion.core.compose import compose
from bastion.core.errors import BadRequest
from bastion.core.list_pages import EncodedPage, canonical_json
from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.paging import encode_cursor, page
from bastion.core.policy import Caller, Policy, PolicyRule
from bastion.core.snapshot import build_snapshot
from bastion.telemetry.audit_keys import AuditKeys
from bastion.web.mcp_fast import encode_reply


def _items(n: int) -> list[CatalogItem]:
    return [
        CatalogItem(
            upstream="u", kind="tool", key=f"t{i:03d}", gateway_name=f"u__t{i:03d}",
            definition={"name": f"t{i:03d}", "description": f"Tool {i}: Ünïcode ΑΣ «{i}»", "inputSchema": {"type": "object", "properties": {"z": {}, "a": {}}}},
        )
        for i in range(n)
    ]


def _view(policy: Policy | None = None) -> Any:
    upstreams = {"u": Upstream(spec=UpstreamSpec(name="u", transport="stdio", command="x"))}
    view, _ = compose(VirtualServerSpec(name="vs", upstreams=("u",), policy=policy), _items(23), upstreams, strict=True)
    return view


@pytest.mark.parametrize("size", [1, 5, 23, 100])
def test_cached_pages_are_the_freshly_sliced_ones_with_their_json(size: int) -> None:
    view = _view()
    keys, items = view.list_keys["tool"], view.lists["tool"]
    cursor: str | None = None
    while True:
        fresh, fresh_next = page("tool", keys, items, cursor, size)
        for _ in range(2):  # built, then served from the cache
            cached, cached_next = view.pages().page("tool", cursor, size)
            assert cached == fresh and cached_next == fresh_next
            assert cached.encoded == json.dumps(fresh, separators=(",", ":")).encode()
        if fresh_next is None:
            break
        cursor = fresh_next
    # A cursor that starts mid-page (the list changed since it was minted) pages from where it says.
    stale = encode_cursor("tool", "u__t010x")
    assert view.pages().page("tool", stale, 5) == page("tool", keys, items, stale, 5)
    # Such pages are not kept (a client could craft cursors without end); the pages we mint are.
    assert view.pages().page("tool", stale, 5)[0] is not view.pages().page("tool", stale, 5)[0]
    assert view.pages().page("tool", None, 5)[0] is view.pages().page("tool", None, 5)[0]
    with pytest.raises(BadRequest):
        view.pages().page("tool", "bm90LW91cnM", 5)


def test_a_reply_with_a_spliced_page_is_byte_for_byte_the_plain_encoding() -> None:
    chunk, cursor = _view().pages().page("tool", None, 7)
    result = {"ttlMs": 0, "cacheScope": "private", "tools": chunk, "nextCursor": cursor, "resultType": "complete"}
    payload = {"jsonrpc": "2.0", "id": "x\u00e9", "result": result}
    plain = {**payload, "result": {**result, "tools": list(chunk)}}
    assert encode_reply(payload) == json.dumps(plain, separators=(",", ":")).encode()
    assert json.loads(encode_reply(payload)) == plain


def test_the_audit_digest_of_a_cached_page_is_that_of_the_plain_result() -> None:
    keys = AuditKeys(os.urandom(32))
    chunk, cursor = _view().pages().page("tool", None, 9)
    assert isinstance(chunk, EncodedPage)
    result = {"tools": chunk, "nextCursor": cursor}
    assert keys.digest(result) == keys.digest({"tools": [dict(d) for d in chunk], "nextCursor": cursor})
    plain = json.dumps({"tools": list(chunk), "nextCursor": cursor}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(result) == plain.encode()


def test_policy_views_are_filtered_per_caller_and_shared_by_callers_with_the_same_rules() -> None:
    policy = Policy(rules=(
        PolicyRule(effect="deny", users=("bob",), tools=("u__t00*",)),
        PolicyRule(effect="allow", tools=("u__t01*", "u__t00*")),
    ))
    view = _view(policy)
    alice, carol, bob = (Caller(user=u) for u in ("alice", "carol", "bob"))
    seen = {}
    for caller in (alice, carol, bob):
        restriction = view.restricted(caller)
        assert restriction is not None
        walked: list[dict[str, Any]] = []
        cursor = None
        while True:
            chunk, cursor = restriction.pages.page("tool", cursor, 4)
            walked += chunk
            if cursor is None:
                break
        expected = [d for n, d in zip(view.list_keys["tool"], view.lists["tool"], strict=True) if policy.allows(caller, "tool", n)]
        assert walked == expected
        seen[caller.user] = restriction
    assert [d["name"] for d in walked] == [f"u__t01{i}" for i in range(10)]  # bob: none of t00*
    assert seen["alice"].pages is seen["carol"].pages  # same rules apply: one filtered view
    assert seen["bob"].pages is not seen["alice"].pages


@pytest.mark.parametrize("query", ["t00", "U__T01", "ünïcode", "ας", "«2»", "tool 1", "nothing", "t\x00u", "ΑΣ"])
def test_the_search_text_matches_exactly_what_matching_each_item_does(query: str) -> None:
    items = _items(23)
    text = CatalogText(items)
    assert text.hits(query) == [matches(i, query) for i in items]


def test_a_rebuild_keeps_the_views_whose_inputs_did_not_change_and_recomposes_the_others() -> None:
    up = Upstream(spec=UpstreamSpec(name="u", transport="stdio", command="x", pin="off"))
    other = Upstream(spec=UpstreamSpec(name="o", transport="stdio", command="x", pin="off"))
    mine = CatalogItem(upstream="o", kind="tool", key="k", gateway_name="o__k", definition={"name": "k", "description": "old"})
    specs = [VirtualServerSpec(name="vs", upstreams=("u",)), VirtualServerSpec(name="ov", upstreams=("o",))]
    first = build_snapshot([up, other], [*_items(5), mine], specs, version=1)
    first.servers["vs"].pages().page("tool", None, 2)
    healthier = other.model_copy(update={"state": other.state.model_copy(update={"status": "healthy"})})
    edited = mine.model_copy(update={"definition": {"name": "k", "description": "new"}})
    second = build_snapshot([up, healthier], [*_items(5), edited], specs, version=2, previous=first)
    assert second.servers["vs"] is first.servers["vs"]  # kept, with its cached pages
    assert second.servers["ov"].lists["tool"][0]["description"] == "new"
    disabled = up.model_copy(update={"spec": up.spec.model_copy(update={"enabled": False})})
    third = build_snapshot([disabled, healthier], [*_items(5), edited], specs, version=3, previous=second)
    assert third.servers["vs"] is not second.servers["vs"] and third.servers["vs"].lists["tool"] == ()
    assert third.servers["ov"] is second.servers["ov"]
