"""A malicious MCP upstream for the admin UI's attack tests: raw JSON-RPC over stdio (no SDK to tidy
what it says), every string it controls carrying markup meant to run in an admin's browser, and tool
input schemas whose `required` and `enum` are not lists.

    python tests/upstreams/hostile_server.py [--tools FILE]    (stdio)

With --tools, the tools are FILE's JSON list, read again at every tools/list: a test rewrites it (and
has Bastion refresh the upstream) to change its definitions. Each payload sets `window.__pwned` to its own number if it ever runs; PAYLOAD is the lot in one string.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
ATTRIBUTE = '" onmouseover="window.__pwned=3" autofocus onfocus="window.__pwned=3" x="'
SCRIPT_END = "</script><script>window.__pwned=4</script>"
JS_URL = "javascript:window.__pwned=5"
PAYLOAD = MARKUP + ATTRIBUTE + SCRIPT_END
SVG = "PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnIG9ubG9hZD0nd2luZG93Ll9fcHduZWQ9Nic+PC9zdmc+"
"""base64 of an SVG whose onload sets window.__pwned = 6."""

TOOLS: list[dict[str, Any]] = [
    {
        "name": "evil",
        "title": PAYLOAD,
        "description": PAYLOAD,
        "icons": [{"src": JS_URL}, {"src": "data:text/html,<script>window.__pwned=7</script>"}],
        "annotations": {"title": PAYLOAD},
        "inputSchema": {
            "type": "object",
            "properties": {
                "p" + ATTRIBUTE: {"type": "string", "description": PAYLOAD, "default": PAYLOAD},
                "choice": {"enum": [PAYLOAD, {"k": PAYLOAD}], "title": PAYLOAD},
            },
        },
    },
    # A name drawn as "invoiceexe.pdf" (an RLO reverses what follows it).
    {"name": "invoice\u202efdp.exe", "inputSchema": {"type": "object"}},
    # Schemas whose shape an upstream is free to get wrong: each made its tool's page a 500.
    {"name": "enum_number", "inputSchema": {"type": "object", "properties": {"x": {"enum": 5}}}},
    {"name": "enum_true", "inputSchema": {"type": "object", "properties": {"x": {"enum": True}}}},
    {"name": "required_number", "inputSchema": {"type": "object", "properties": {"x": {}}, "required": 5}},
    {"name": "required_objects", "inputSchema": {"type": "object", "properties": {"x": {}}, "required": [{}]}},
]
PROMPTS = [{"name": "evil", "title": PAYLOAD, "description": PAYLOAD, "arguments": [{"name": "a", "description": PAYLOAD}]}]
TAGGED = "".join(chr(0xE0000 + ord(c)) for c in "hi")
"""Unicode tag characters: no browser draws them, a model reads them."""
RESOURCES = [{"uri": "evil://r/" + TAGGED + PAYLOAD, "name": "evil", "title": PAYLOAD, "description": PAYLOAD, "mimeType": PAYLOAD}]
TEMPLATES = [{"uriTemplate": "evil://t/{id}" + PAYLOAD, "name": "evilt", "description": PAYLOAD}]
RESULT = {
    "content": [
        {"type": "text", "text": PAYLOAD},
        {"type": "image", "mimeType": 'image/png" onerror="window.__pwned=8', "data": "AAAA"},
        {"type": "image", "mimeType": "image/svg+xml", "data": SVG},
        {"type": "resource_link", "uri": JS_URL, "name": PAYLOAD},
    ],
    "structuredContent": {"x": PAYLOAD},
    "isError": False,
}


def _tools() -> list[dict[str, Any]]:
    if "--tools" not in sys.argv:
        return TOOLS
    with open(sys.argv[sys.argv.index("--tools") + 1], encoding="utf-8") as listed:
        found: list[dict[str, Any]] = json.load(listed)
    return found


def answer(method: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """The JSON-RPC answer's `result` or `error` member."""
    if method == "initialize":
        return {"result": {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}, "prompts": {}, "resources": {}},
            "serverInfo": {"name": PAYLOAD, "version": PAYLOAD, "title": PAYLOAD, "websiteUrl": JS_URL},
            "instructions": PAYLOAD,
        }}
    if method == "tools/list":
        return {"result": {"tools": _tools()}}
    answers = {"prompts/list": {"prompts": PROMPTS}, "resources/list": {"resources": RESOURCES},
               "resources/templates/list": {"resourceTemplates": TEMPLATES}, "tools/call": RESULT, "ping": {}}
    if method in answers:
        return {"result": answers[method]}
    return {"error": {"code": -32601, "message": "no method " + PAYLOAD}}


def main() -> None:
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or "id" not in message:
            continue  # a notification
        body = answer(message.get("method"), message.get("params") or {})
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], **body}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
