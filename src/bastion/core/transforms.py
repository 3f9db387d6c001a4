"""Per-virtual-server tool transforms: rename a tool, rewrite its title and description, rename or hide
its arguments (a hidden one gets a fixed value), set defaults, override annotations.

Clients see the transformed definition; a call is mapped back (renamed arguments restored, fixed
values injected, defaults filled) before it is dispatched. A transform that no longer fits the
upstream's schema (an argument it names is gone) is reported and the tool is held. Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from bastion.core.errors import BadRequest
from bastion.core.naming import is_valid_tool_name
from bastion.core.values import Frozen


class ArgumentTransform(Frozen):
    rename: str | None = None
    """The name clients use for this argument."""
    description: str | None = None
    fixed: Any = None
    """A value always sent; the argument is hidden from clients. Set `hidden` with it (null is a value too)."""
    hidden: bool = False
    default: Any = None
    """A value sent when the client leaves the argument out (shown as the schema's `default`)."""


class ToolTransform(Frozen):
    name: str | None = None
    title: str | None = None
    description: str | None = None
    annotations: dict[str, Any] = Field(default_factory=dict)
    """Merged over the upstream's annotations (e.g. {"readOnlyHint": true})."""
    arguments: dict[str, ArgumentTransform] = Field(default_factory=dict)
    """Keyed by the upstream's argument name."""


class TransformError(BadRequest):
    """A transform that does not fit the tool it applies to."""


def _properties(definition: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    schema = definition.get("inputSchema")
    schema = schema if isinstance(schema, dict) else {}
    props = schema.get("properties")
    required = schema.get("required")
    return (dict(props) if isinstance(props, dict) else {}), (list(required) if isinstance(required, list) else [])


def check(transform: ToolTransform, definition: Mapping[str, Any], tool: str) -> None:
    """Raise TransformError saying why `transform` does not fit the upstream `definition` of `tool`."""
    if transform.name is not None and not is_valid_tool_name(transform.name):
        raise TransformError(f"transform of {tool!r}: name {transform.name!r} breaks the MCP name rules")
    props, required = _properties(definition)
    seen: set[str] = set()
    for arg, change in transform.arguments.items():
        if arg not in props:
            known = ", ".join(sorted(props)) or "none"
            raise TransformError(f"transform of {tool!r} names argument {arg!r}, which the tool does not have (it has: {known})")
        if change.hidden and (change.rename is not None or "default" in change.model_fields_set):
            raise TransformError(f"transform of {tool!r}: hidden argument {arg!r} takes only a fixed value")
        if "fixed" in change.model_fields_set and not change.hidden:
            raise TransformError(f"transform of {tool!r}: argument {arg!r} has a fixed value, so set hidden: true")
        if arg in required and change.hidden and "fixed" not in change.model_fields_set:
            raise TransformError(f"transform of {tool!r}: required argument {arg!r} cannot be hidden without a fixed value")
        shown = change.rename or arg
        if not change.hidden:
            if shown in seen or (change.rename is not None and shown in props and shown not in transform.arguments):
                raise TransformError(f"transform of {tool!r}: two arguments would be called {shown!r}")
            seen.add(shown)


def apply_definition(transform: ToolTransform, definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition clients see (the exposed name is set by composition)."""
    out = copy.deepcopy(dict(definition))
    for key in ("title", "description"):
        value = getattr(transform, key)
        if value is not None:
            out[key] = value
    if transform.annotations:
        base = out.get("annotations")
        out["annotations"] = {**(base if isinstance(base, dict) else {}), **transform.annotations}
    if not transform.arguments:
        return out
    props, required = _properties(out)
    new_props: dict[str, Any] = {}
    new_required: list[str] = []
    for arg, schema in props.items():
        change = transform.arguments.get(arg)
        if change is None:
            new_props[arg] = schema
            if arg in required:
                new_required.append(arg)
            continue
        if change.hidden:
            continue
        shown = change.rename or arg
        schema = dict(schema) if isinstance(schema, dict) else {}
        if change.description is not None:
            schema["description"] = change.description
        has_default = "default" in change.model_fields_set
        if has_default:
            schema["default"] = change.default
        new_props[shown] = schema
        if arg in required and not has_default:
            new_required.append(shown)
    schema = dict(out.get("inputSchema") or {"type": "object"})
    schema["properties"] = new_props
    if new_required:
        schema["required"] = new_required
    else:
        schema.pop("required", None)
    out["inputSchema"] = schema
    return out


def map_call(transform: ToolTransform, arguments: Any) -> dict[str, Any]:
    """The upstream's arguments for a client's call: renamed back, fixed values injected, defaults filled.
    A client sending a hidden argument, or an argument by its upstream name when renamed, is refused."""
    given = dict(arguments) if isinstance(arguments, dict) else {}
    if arguments is not None and not isinstance(arguments, dict):
        raise BadRequest("tools/call 'arguments' must be an object")
    out: dict[str, Any] = {}
    by_shown = {(c.rename or a): a for a, c in transform.arguments.items() if not c.hidden}
    hidden = {a for a, c in transform.arguments.items() if c.hidden}
    for key, value in given.items():
        original = by_shown.get(key)
        if original is None and (key in hidden or key in transform.arguments):
            raise BadRequest(f"argument {key!r} is not accepted by this tool")
        out[original or key] = value
    for arg, change in transform.arguments.items():
        if change.hidden and "fixed" in change.model_fields_set:
            out[arg] = change.fixed
        elif arg not in out and "default" in change.model_fields_set:
            out[arg] = change.default
    return out
