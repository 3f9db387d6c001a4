"""The facade's docs page: the caller's OpenAPI document as one self-contained HTML page.

No script, no CDN: the only style is inline and allowed by its hash in the page's own content
security policy, so the page works offline and under the strict policy every response carries.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from typing import Any

_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}"
    "h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}"
    ".op{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}"
    ".m{font-weight:bold;font-family:monospace;margin-right:.6rem}code,pre{font-family:monospace}"
    "pre{background:#f6f6f6;padding:.6rem;overflow:auto;max-height:24rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def _schema_of(document: dict[str, Any], operation: dict[str, Any]) -> Any:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return document["components"]["schemas"].get(ref.removeprefix("#/components/schemas/"), schema)
    return schema


def _operation(document: dict[str, Any], base: str, path: str, method: str, operation: dict[str, Any]) -> str:
    parts = [
        f'<div class="op" id="{escape(str(operation.get("operationId", "")))}">',
        f'<p><span class="m">{escape(method.upper())}</span><code>{escape(path)}</code></p>',
        f"<p><strong>{escape(str(operation.get('summary', '')))}</strong></p>",
    ]
    if operation.get("description"):
        parts.append(f"<p>{escape(str(operation['description']))}</p>")
    for parameter in operation.get("parameters", ()):
        parts.append(f"<p>Query parameter <code>{escape(str(parameter.get('name')))}</code> (required)</p>")
    schema = _schema_of(document, operation)
    if schema is not None:
        parts.append("<p>Request body (JSON):</p><pre>" + escape(json.dumps(schema, indent=2)[:20000]) + "</pre>")
    example = f"curl -X {method.upper()} -H 'Authorization: Bearer $TOKEN'"
    if method == "post":
        example += " -H 'Content-Type: application/json' -d '{...}'"
    parts.append(f"<pre>{escape(example)} {escape(base + path)}</pre></div>")
    return "".join(parts)


def docs_page(document: dict[str, Any]) -> tuple[str, str]:
    """The page, and the content security policy to send with it."""
    info = document.get("info", {})
    base = str(document.get("servers", [{}])[0].get("url", "")).rstrip("/")
    sections: dict[str, list[str]] = {}
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            sections.setdefault(tag, []).append(_operation(document, base, path, method, operation))
    body = "".join(f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in sections.items())
    if not body:
        body = "<p>Nothing on this server is available to you.</p>"
    title = escape(str(info.get("title", "Bastion")))
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>{escape(str(info.get('description', '')))}</p>"
        f"<p>Machine-readable: <code>openapi.json</code> (OpenAPI {escape(str(document.get('openapi')))}).</p>"
        f"{body}</body></html>"
    )
    return page, POLICY
