"""The tool playground: a form rendered from a tool's input schema, and the call made through a
chosen virtual server as the signed-in user (the real MCP endpoint, in process)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from bastion.web.admin.backend import Backend
from bastion.web.json_depth import loads

_SCALARS = {"string", "integer", "number", "boolean"}


def fields(schema: Any) -> list[dict[str, Any]]:
    """One form field per top-level property: its name, widget, whether required, its description."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    # An upstream writes the schema: `required` and `enum` may be anything (a number was a 500 here).
    listed = schema.get("required")
    required = {n for n in listed if isinstance(n, str)} if isinstance(listed, list) else set()
    out = []
    for name, prop in schema["properties"].items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type") if isinstance(prop.get("type"), str) else None
        enum = prop.get("enum")
        widget = "select" if isinstance(enum, list) else kind if kind in _SCALARS else "json"
        out.append(
            {
                "name": str(name),
                "widget": widget,
                "required": name in required,
                "description": prop.get("description") or prop.get("title") or "",
                # Each option's value is its JSON, so a number or null comes back as itself.
                "options": [(v if isinstance(v, str) else json.dumps(v), json.dumps(v)) for v in enum]
                if isinstance(enum, list)
                else [],
                "default": prop.get("default"),
            }
        )
    return out


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
    except MCPError as exc:
        outcome = {"error": f"{exc.message} (error {exc.code})"}
    except Exception as exc:  # noqa: BLE001 - shown to the user who pressed the button, never a 500
        outcome = {"error": f"the call failed: {type(exc).__name__}"}
    outcome["ms"] = round((time.perf_counter() - started) * 1e3, 1)
    return outcome
