"""The tool playground: a form rendered from a tool's input schema, and the call made through a
chosen virtual server as the signed-in user (the real MCP endpoint, in process)."""

from __future__ import annotations

import json
import time
from itertools import islice
from typing import Any
from urllib.parse import quote

from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from bastion.web.admin.backend import Backend
from bastion.web.json_depth import loads

_SCALARS = {"string", "integer", "number", "boolean"}
# What one page's form holds: a tool may have 100,000 arguments, or an enum of as many choices.
FIELDS = 200
OPTIONS = 100
"""Choices of one enum listed in a select; more are typed as JSON."""
CHOICES = 1_000
"""Choices listed in the whole form."""


def _properties(schema: Any) -> dict[Any, Any]:
    found = schema.get("properties") if isinstance(schema, dict) else None
    return found if isinstance(found, dict) else {}


def fields(schema: Any) -> list[dict[str, Any]]:
    """One form field per top-level property, for the first FIELDS: its name, widget, whether required,
    its description. An enum of more than OPTIONS choices (or past the form's CHOICES) is typed as JSON."""
    # An upstream writes the schema: `required` and `enum` may be anything (a number was a 500 here).
    listed = schema.get("required") if isinstance(schema, dict) else None
    required = {n for n in listed if isinstance(n, str)} if isinstance(listed, list) else set()
    out, choices = [], CHOICES
    for name, prop in islice(_properties(schema).items(), FIELDS):
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type") if isinstance(prop.get("type"), str) else None
        enum = prop.get("enum")
        options = _options(enum) if isinstance(enum, list) and len(enum) <= min(OPTIONS, choices) else None
        choices -= len(options or ())
        out.append(
            {
                "name": str(name),
                "widget": "select" if options is not None else "json" if isinstance(enum, list) or kind not in _SCALARS else kind,
                "required": name in required,
                "description": prop.get("description") or prop.get("title") or "",
                "options": options or [],
                "unlisted": len(enum) if isinstance(enum, list) and options is None else 0,
                "default": prop.get("default"),
            }
        )
    return out


def _options(enum: list[Any]) -> list[tuple[str, str]]:
    """(label, value) of each choice; the value is its JSON, so a number or null comes back as itself."""
    return [(v if isinstance(v, str) else json.dumps(v), json.dumps(v)) for v in enum]


def left_out(schema: Any) -> int:
    """How many top-level properties the form does not show (given as JSON instead)."""
    return max(0, len(_properties(schema)) - FIELDS)


def arguments(schema: Any, form: Any) -> dict[str, Any]:
    """The call's arguments from the submitted form; raises ValueError saying which field is wrong."""
    raw = str(form.get("raw_json") or "").strip()
    if raw:
        parsed = loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("the JSON arguments must be an object")
        return parsed
    args: dict[str, Any] = {}
    for field in fields(schema):
        name, widget = field["name"], field["widget"]
        value = form.get(f"arg:{name}")
        if widget == "boolean":
            args[name] = value == "on"
            continue
        text = str(value or "")
        if text == "":
            continue
        try:
            if widget == "integer":
                args[name] = int(text)
            elif widget == "number":
                args[name] = float(text)
            elif widget in ("json", "select"):
                args[name] = loads(text)
            else:
                args[name] = text
        except ValueError:
            raise ValueError(f"{name}: not a valid {widget}") from None
    return args


async def call(backend: Backend, token: str, client_ip: str | None, server: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call `tool` on virtual server `server` over its MCP endpoint; the result with its timing."""
    started = time.perf_counter()
    url = f"/servers/{quote(server, safe='')}/mcp"
    outcome: dict[str, Any]
    try:
        async with backend.client(token, client_ip) as http:
            streams = streamable_http_client(str(http.base_url.join(url)), http_client=http)
            async with Client(streams, mode="2026-07-28") as client:
                result = await client.call_tool(tool, args)
        outcome = {"result": result.model_dump(by_alias=True, mode="json", exclude_none=True)}
    except Exception as exc:  # noqa: BLE001 - shown to the user who pressed the button, never a 500
        refusal = _refusal(exc)  # the client's task groups wrap the server's answer in exception groups
        if refusal is None:
            outcome = {"error": f"the call failed: {type(_innermost(exc)).__name__}"}
        elif isinstance(refusal.data, dict) and refusal.data.get("type") == "UnknownTool":
            outcome = {"error": refusal.message, "status": 404}
        else:
            outcome = {"error": f"{refusal.message} (error {refusal.code})"}
    outcome["ms"] = round((time.perf_counter() - started) * 1e3, 1)
    return outcome


def _refusal(exc: BaseException) -> MCPError | None:
    """The server's JSON-RPC error that ended the call, wherever exception groups put it."""
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _refusal(inner)) is not None:
                return found
    return None


def _innermost(exc: BaseException) -> BaseException:
    """The first exception an exception group holds (its class names what went wrong), or `exc`."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
