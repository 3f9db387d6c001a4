"""Tool transforms (core/transforms.py) and their composition, without I/O."""

from __future__ import annotations

import pytest

from bastion.core.compose import compose
from bastion.core.errors import BadRequest
from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.transforms import ToolTransform, TransformError, apply_definition, check, map_call

ADD = {
    "name": "add",
    "description": "Add two integers.",
    "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
}
TRANSFORM = ToolTransform.model_validate(
    {"name": "plus_ten", "description": "Add ten.", "annotations": {"readOnlyHint": True},
     "arguments": {"a": {"rename": "x", "description": "The number"}, "b": {"hidden": True, "fixed": 10}}}
)


def test_clients_see_the_renamed_argument_without_the_hidden_one() -> None:
    shown = apply_definition(TRANSFORM, ADD)
    assert shown["inputSchema"]["properties"] == {"x": {"type": "integer", "description": "The number"}}
    assert shown["inputSchema"]["required"] == ["x"]
    assert (shown["description"], shown["annotations"]) == ("Add ten.", {"readOnlyHint": True})
    assert ADD["inputSchema"]["properties"]["a"] == {"type": "integer"}  # the upstream's copy is untouched


def test_a_call_is_mapped_back_with_fixed_values_and_defaults() -> None:
    assert map_call(TRANSFORM, {"x": 5}) == {"a": 5, "b": 10}
    with_default = ToolTransform.model_validate({"arguments": {"b": {"default": 1}}})
    assert map_call(with_default, {"a": 2}) == {"a": 2, "b": 1}
    assert map_call(with_default, {"a": 2, "b": 3}) == {"a": 2, "b": 3}
    defaulted = apply_definition(with_default, ADD)["inputSchema"]
    assert defaulted["required"] == ["a"] and defaulted["properties"]["b"]["default"] == 1
    for smuggled in ({"x": 1, "b": 99}, {"a": 1}):
        with pytest.raises(BadRequest, match="not accepted"):
            map_call(TRANSFORM, smuggled)


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        ({"arguments": {"c": {"rename": "z"}}}, "argument 'c', which the tool does not have"),
        ({"arguments": {"b": {"hidden": True}}}, "cannot be hidden without a fixed value"),
        ({"arguments": {"b": {"fixed": 3}}}, "set hidden: true"),
        ({"arguments": {"a": {"rename": "b"}}}, "two arguments would be called 'b'"),
        ({"name": "bad name!"}, "MCP name rules"),
    ],
)
def test_transforms_that_do_not_fit_are_refused(transform: dict[str, object], message: str) -> None:
    with pytest.raises(TransformError, match=message):
        check(ToolTransform.model_validate(transform), ADD, "fx__add")


def test_on_save_a_misfit_is_refused_and_after_a_refresh_the_tool_is_held() -> None:
    upstreams = {"fx": Upstream(spec=UpstreamSpec(name="fx", transport="stdio", command="x"))}
    item = CatalogItem(upstream="fx", kind="tool", key="add", gateway_name="fx__add", definition=ADD)
    spec = VirtualServerSpec(name="vs", upstreams=("fx",), transforms={"fx__add": TRANSFORM})
    view, problems = compose(spec, [item], upstreams, strict=True)
    assert list(view.tools) == ["plus_ten"] and view.transforms["plus_ten"] == TRANSFORM and problems == []
    changed = item.model_copy(update={"definition": {**ADD, "inputSchema": {"type": "object", "properties": {"a": {}}}}})
    with pytest.raises(TransformError):
        compose(spec, [changed], upstreams, strict=True)
    view, problems = compose(spec, [changed], upstreams, strict=False)
    assert list(view.tools) == [] and "plus_ten" in view.held and "'b'" in problems[0] and "held" in problems[0]
    with pytest.raises(BadRequest, match="does not expose"):
        compose(spec.model_copy(update={"transforms": {"fx__nope": TRANSFORM}}), [item], upstreams, strict=True)
