"""Who keeps an exposed name or URI several upstreams offer: the first to list it, not the first by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bastion.core.compose import compose
from bastion.core.models import CatalogItem, ItemKind, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.ownership import assign, claim_order

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UPSTREAMS = {n: Upstream(spec=UpstreamSpec(name=n, transport="stdio", command="x")) for n in ("aa", "zz")}


def item(up: str, kind: ItemKind, key: str, seconds: int | None) -> CatalogItem:
    at = None if seconds is None else T0 + timedelta(seconds=seconds)
    field = {"tool": "name", "resource": "uri", "resource_template": "uriTemplate"}[kind]
    name = key.rsplit("/", 1)[-1].strip("{}") or "r"
    return CatalogItem(upstream=up, kind=kind, key=key, gateway_name=f"{up}__{name}", definition={field: key, "name": name}, discovered_at=at)


def test_the_first_discovered_keeps_the_name_whatever_the_alphabet() -> None:
    owner, newcomer = item("zz", "tool", "echo", 0), item("aa", "tool", "echo", 60)
    owners, clashes = assign("tool", [("echo", newcomer), ("echo", owner)])
    assert owners["echo"] is owner
    assert [(c.held, c.owner) for c in clashes] == [(newcomer, owner)]
    assert claim_order(item("aa", "tool", "x", None)) > claim_order(item("zz", "tool", "x", 10**6))  # unsaved: last


def test_a_newcomer_is_held_out_of_names_uris_and_templates_it_did_not_own_first() -> None:
    items = [
        item("zz", "tool", "echo", 0),
        item("zz", "resource", "fixture://static", 0),
        item("zz", "resource_template", "fixture://items/{id}", 0),
        item("aa", "tool", "echo", 60),
        item("aa", "resource", "FIXTURE://static", 60),  # the same URI, spelled otherwise
        item("aa", "resource", "fixture://items/secret1", 60),  # under the owner's template
        item("aa", "resource_template", "fixture://{+any}", 60),  # overlaps: tried after the owner's
        item("aa", "resource", "fixture://mine", 60),
    ]
    spec = VirtualServerSpec(name="vs", upstreams=("aa", "zz"), prefix="never")
    view, problems = compose(spec, items, UPSTREAMS, strict=False)
    assert view.tools["echo"].upstream == "zz"
    assert view.resources["fixture://static"].upstream == "zz"
    assert "fixture://items/secret1" not in view.resources
    assert view.template_matcher.match("fixture://items/secret1") == "fixture://items/{id}"
    assert view.resources["fixture://mine"].upstream == "aa"
    held = sorted((c.kind, c.name) for c in view.clashes)
    assert held == [("resource", "fixture://items/secret1"), ("resource", "fixture://static"), ("tool", "echo")]
    assert all(c.held.upstream == "aa" and c.owner.upstream == "zz" for c in view.clashes)
    assert len(problems) == 3


def test_an_older_concrete_resource_is_not_held_out_by_a_newer_template() -> None:
    items = [item("aa", "resource", "fixture://items/1", 0), item("zz", "resource_template", "fixture://items/{id}", 60)]
    view, problems = compose(VirtualServerSpec(name="vs", upstreams=("aa", "zz")), items, UPSTREAMS, strict=False)
    assert view.resources["fixture://items/1"].upstream == "aa" and problems == []


def test_names_that_break_the_mcp_rules_are_never_exposed_as_they_are() -> None:
    lookalike = CatalogItem(
        upstream="aa", kind="prompt", key="gr\u0435et", gateway_name="aa__gr_et_1a2b3c4d", definition={"name": "gr\u0435et"}
    )
    spec = VirtualServerSpec(name="vs", upstreams=("aa",), prefix="never")
    view, _ = compose(spec, [lookalike, item("aa", "tool", "echo", 0)], UPSTREAMS, strict=True)
    assert sorted(view.prompts) == ["aa__gr_et_1a2b3c4d"]
    assert sorted(view.tools) == ["echo"]
