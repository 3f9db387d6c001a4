"""Composition: a virtual server's spec plus the catalog give the view its clients see."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.core.compose import compose, exposed_definition
from bastion.core.errors import BadRequest, NameCollision
from bastion.core.models import CatalogItem, ItemKind, Upstream, UpstreamSpec, VirtualServerSpec


def upstream(name: str, enabled: bool = True) -> Upstream:
    return Upstream(spec=UpstreamSpec(name=name, transport="stdio", command="x", enabled=enabled))


def item(up: str, kind: ItemKind, key: str, *, enabled: bool = True, **extra: Any) -> CatalogItem:
    definition: dict[str, Any] = {"name": key} if kind in ("tool", "prompt") else {"uri": key, "name": key.rsplit("/", 1)[-1]}
    if kind == "resource_template":
        definition = {"uriTemplate": key, "name": "tpl"}
    definition["description"] = f"{kind} {key}"
    name = key if kind in ("tool", "prompt") else definition["name"]
    return CatalogItem(
        upstream=up, kind=kind, key=key, gateway_name=f"{up}__{name}", definition=definition, enabled=enabled, **extra
    )


UPSTREAMS = {"a": upstream("a"), "b": upstream("b")}


def catalog() -> list[CatalogItem]:
    return [
        item("a", "tool", "echo"),
        item("a", "tool", "add"),
        item("a", "prompt", "greet"),
        item("a", "resource", "fixture://static"),
        item("a", "resource_template", "fixture://items/{id}"),
        item("b", "tool", "echo"),
        item("b", "tool", "mul"),
    ]


def spec(**kwargs: Any) -> VirtualServerSpec:
    return VirtualServerSpec(name="vs", **kwargs)


def test_prefix_always_exposes_gateway_names() -> None:
    view, problems = compose(spec(upstreams=("a", "b")), catalog(), UPSTREAMS, strict=True)
    assert problems == []
    assert sorted(view.tools) == ["a__add", "a__echo", "b__echo", "b__mul"]
    assert list(view.prompts) == ["a__greet"]
    assert [d["name"] for d in view.lists["tool"]] == ["a__add", "a__echo", "b__echo", "b__mul"]
    assert view.upstreams == frozenset({"a", "b"})


def test_prefix_never_exposes_original_names() -> None:
    view, _ = compose(spec(upstreams=("a",), prefix="never"), catalog(), UPSTREAMS, strict=True)
    assert sorted(view.tools) == ["add", "echo"]
    assert list(view.prompts) == ["greet"]
    assert [d["name"] for d in view.lists["tool"]] == ["add", "echo"]


def test_resources_are_exposed_by_uri_whatever_the_prefix() -> None:
    for prefix in ("always", "never"):
        view, _ = compose(spec(upstreams=("a",), prefix=prefix), catalog(), UPSTREAMS, strict=True)
        assert list(view.resources) == ["fixture://static"]
        assert list(view.templates) == ["fixture://items/{id}"]
        assert view.template_matcher.match("fixture://items/7") == "fixture://items/{id}"


def test_collision_is_refused_in_strict_mode() -> None:
    with pytest.raises(NameCollision) as err:
        compose(spec(upstreams=("a", "b"), prefix="never"), catalog(), UPSTREAMS, strict=True)
    assert "'echo'" in err.value.detail
    assert "a__echo" in err.value.detail and "b__echo" in err.value.detail
    assert err.value.http_status == 409


def test_strict_collision_names_every_colliding_item() -> None:
    items = [*catalog(), item("b", "tool", "add"), item("b", "prompt", "greet")]
    with pytest.raises(NameCollision) as err:
        compose(spec(upstreams=("a", "b"), prefix="never"), items, UPSTREAMS, strict=True)
    for name in ("'echo'", "'add'", "'greet'"):
        assert name in err.value.detail
    assert len(err.value.extra["collisions"]) == 3
    _, problems = compose(spec(upstreams=("a", "b"), prefix="never"), items, UPSTREAMS, strict=False)
    assert problems == err.value.extra["collisions"]  # the same messages, so they can be compared


def test_shared_resource_uri_is_reported_not_refused() -> None:
    items = [*catalog(), item("b", "resource", "fixture://static"), item("b", "resource_template", "fixture://items/{id}")]
    view, problems = compose(spec(upstreams=("a", "b")), items, UPSTREAMS, strict=True)
    assert view.resources["fixture://static"].upstream == "a"
    assert view.templates["fixture://items/{id}"].upstream == "a"
    assert len(problems) == 2 and all("a__" in p and "b__" in p for p in problems)
    assert sorted(view.tools) == ["a__add", "a__echo", "b__echo", "b__mul"]


def test_collision_is_reported_in_lenient_mode_and_first_wins() -> None:
    view, problems = compose(spec(upstreams=("a", "b"), prefix="never"), catalog(), UPSTREAMS, strict=False)
    assert len(problems) == 1 and "'echo'" in problems[0]
    assert view.tools["echo"].upstream == "a"
    assert sorted(view.tools) == ["add", "echo", "mul"]


def test_selected_items_only() -> None:
    view, _ = compose(spec(tools=("b__mul", "a__echo"), prompts=("a__greet",)), catalog(), UPSTREAMS, strict=True)
    assert sorted(view.tools) == ["a__echo", "b__mul"]
    assert list(view.prompts) == ["a__greet"]
    assert view.resources == {} and view.templates == {}


def test_resource_reference_can_name_a_template() -> None:
    view, _ = compose(spec(resources=("a__tpl", "a__static")), catalog(), UPSTREAMS, strict=True)
    assert list(view.resources) == ["fixture://static"]
    assert list(view.templates) == ["fixture://items/{id}"]


def test_disabled_item_excluded_and_recorded() -> None:
    items = [i if i.gateway_name != "a__echo" else i.model_copy(update={"enabled": False}) for i in catalog()]
    view, problems = compose(spec(upstreams=("a",)), items, UPSTREAMS, strict=True)
    assert problems == []
    assert "a__echo" not in view.tools
    assert ("tool", "a__echo") in view.disabled
    assert [d["name"] for d in view.lists["tool"]] == ["a__add"]


def test_disabled_upstream_items_excluded_and_recorded() -> None:
    upstreams = {"a": upstream("a", enabled=False), "b": upstream("b")}
    view, _ = compose(spec(upstreams=("a", "b")), catalog(), upstreams, strict=True)
    assert sorted(view.tools) == ["b__echo", "b__mul"]
    assert {("tool", "a__echo"), ("tool", "a__add"), ("prompt", "a__greet")} <= view.disabled
    assert view.upstreams == frozenset({"b"})


def test_disabled_item_does_not_collide() -> None:
    items = [i if i.gateway_name != "a__echo" else i.model_copy(update={"enabled": False}) for i in catalog()]
    view, problems = compose(spec(upstreams=("a", "b"), prefix="never"), items, UPSTREAMS, strict=True)
    assert problems == []
    assert view.tools["echo"].upstream == "b"
    assert ("tool", "echo") not in view.disabled


def test_order_is_deterministic_whatever_the_input_order() -> None:
    forward, _ = compose(spec(upstreams=("a", "b")), catalog(), UPSTREAMS, strict=True)
    backward, _ = compose(spec(upstreams=("b", "a")), list(reversed(catalog())), UPSTREAMS, strict=True)
    assert forward.lists == backward.lists
    assert list(forward.tools) == list(backward.tools)
    lenient_a, _ = compose(spec(upstreams=("a", "b"), prefix="never"), catalog(), UPSTREAMS, strict=False)
    lenient_b, _ = compose(spec(upstreams=("b", "a"), prefix="never"), list(reversed(catalog())), UPSTREAMS, strict=False)
    assert lenient_a.tools["echo"] == lenient_b.tools["echo"]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"tools": ("a__nope",)}, "tool 'a__nope'"),
        ({"prompts": ("a__echo",)}, "prompt 'a__echo'"),
        ({"resources": ("zz__static",)}, "resource 'zz__static'"),
        ({"upstreams": ("zz",)}, "upstream 'zz'"),
    ],
)
def test_unknown_reference_refused(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(BadRequest) as err:
        compose(spec(**kwargs), catalog(), UPSTREAMS, strict=True)
    assert not isinstance(err.value, NameCollision)
    assert named in err.value.detail


def test_unknown_reference_reported_when_lenient() -> None:
    view, problems = compose(spec(tools=("a__echo", "a__gone")), catalog(), UPSTREAMS, strict=False)
    assert list(view.tools) == ["a__echo"]
    assert problems == ["unknown tool 'a__gone'"]


def test_overrides_apply_to_name_and_description() -> None:
    items = [
        i.model_copy(update={"name_override": "shout", "description_override": "Loud."}) if i.gateway_name == "a__echo" else i
        for i in catalog()
    ]
    view, _ = compose(spec(upstreams=("a",)), items, UPSTREAMS, strict=True)
    assert "shout" in view.tools and "a__echo" not in view.tools
    shout = next(d for d in view.lists["tool"] if d["name"] == "shout")
    assert shout["description"] == "Loud."
    assert exposed_definition(view.tools["shout"], "never")["name"] == "shout"


def test_rename_onto_another_exposed_name_is_a_collision() -> None:
    items = [i.model_copy(update={"name_override": "a__add"}) if i.gateway_name == "a__echo" else i for i in catalog()]
    with pytest.raises(NameCollision):
        compose(spec(upstreams=("a",)), items, UPSTREAMS, strict=True)


def test_definition_is_not_mutated() -> None:
    items = catalog()
    compose(spec(upstreams=("a",), prefix="always"), items, UPSTREAMS, strict=True)
    assert items[0].definition["name"] == "echo"
