"""Discover: progressive discovery for virtual servers with `discovery: "search"`.

Such a server lists three meta-tools (search_tools, describe_tool, call_tool) instead of its catalog.
Searching and describing are answered here, within the caller's policy; `call_tool` becomes a
tools/call of the named tool before rate limiting and routing, so limits, policy, transforms and
pinning apply to the real tool exactly as for a direct call.
"""

from __future__ import annotations

import json
from typing import Any

from bastion.core.compose import Restriction, ServerView
from bastion.core.errors import BadRequest, UnknownTool
from bastion.core.search import CALL_TOOL, DESCRIBE_TOOL, META_NAMES, META_TOOLS, SEARCH_TOOL
from bastion.pipeline.base import Next, Result
from bastion.pipeline.context import CallContext

MAX_RESULTS = 50


def _allowed(restriction: Restriction | None) -> Any:
    return None if restriction is None else (lambda name: restriction.allows("tool", name))


def _answer(payload: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": json.dumps(payload)}], "structuredContent": payload, "isError": False}


def _definition(view: ServerView, name: str, restriction: Restriction | None) -> dict[str, Any]:
    keys = view.list_keys.get("tool", ())
    allowed = _allowed(restriction)
    if name in view.tools and (allowed is None or allowed(name)):
        return view.lists["tool"][keys.index(name)]
    raise UnknownTool(f"unknown tool {name!r} on virtual server {view.name!r}", name=name)


def _arguments(params: dict[str, Any]) -> dict[str, Any]:
    args = params.get("arguments", {})
    if not isinstance(args, dict):
        raise BadRequest("tools/call 'arguments' must be an object")
    return args


async def discover(ctx: CallContext, call_next: Next) -> Result:
    view = ctx.view
    assert view is not None, "resolve runs before discover"
    if view.spec.discovery != "search":
        return await call_next(ctx)
    if ctx.method == "tools/list":
        return {"tools": list(META_TOOLS)}
    if ctx.method != "tools/call" or ctx.params.get("name") not in META_NAMES:
        return await call_next(ctx)
    args = _arguments(ctx.params)
    name = ctx.params["name"]
    if name == SEARCH_TOOL:
        query, limit = args.get("query"), args.get("limit", 10)
        if not isinstance(query, str) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
            raise BadRequest(f"{SEARCH_TOOL} needs a string 'query' and a 'limit' of 1-{MAX_RESULTS}")
        found = view.tool_index().search(query, limit, _allowed(ctx.restriction))
        tools = [{**_definition(view, n, None), "score": score} for n, score in found]
        return _answer({"tools": tools})
    target = args.get("name")
    if not isinstance(target, str) or not target or target in META_NAMES:
        raise BadRequest(f"{name} needs the 'name' of a tool found by {SEARCH_TOOL}")
    if name == DESCRIBE_TOOL:
        return _answer(_definition(view, target, ctx.restriction))
    assert name == CALL_TOOL
    inner = args.get("arguments", {})
    if not isinstance(inner, dict):
        raise BadRequest(f"{CALL_TOOL} 'arguments' must be an object")
    ctx.params = {**{k: v for k, v in ctx.params.items() if k not in ("name", "arguments")}, "name": target, "arguments": inner}
    return await call_next(ctx)
