"""How a parameter's value travels, by its OpenAPI `style` and `explode` (the style tables of OpenAPI
3.0/3.1: simple, label and matrix in the path; form, spaceDelimited, pipeDelimited and deepObject in the
query; simple in headers; form in cookies), or as JSON text for a parameter described by `content`.
Pure.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

JSON = "json"
"""The style of a parameter described by `content` (a JSON media type): its value as JSON text."""
DEFAULT_STYLES = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}
_JOINS = {"spaceDelimited": " ", "pipeDelimited": "|"}


def text(value: Any) -> str:
    """A scalar as it reads in a URL or header: booleans in JSON spelling, objects as JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value if isinstance(value, str) else str(value)


def _items(value: Any) -> list[str]:
    return [text(v) for v in value if v is not None]


def _pairs(value: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), text(v)) for k, v in value.items() if v is not None]


def style_of(param: dict[str, Any]) -> tuple[str, bool]:
    """A parameter's style and explode, with OpenAPI's defaults for its location."""
    if param.get("schema") is None and isinstance(param.get("content"), dict):
        return JSON, False
    style = param.get("style")
    if not isinstance(style, str) or not style:
        style = DEFAULT_STYLES.get(str(param.get("in")), "simple")
    explode = param.get("explode")
    return style, explode if isinstance(explode, bool) else style == "form"


def path_value(name: str, style: str, explode: bool, value: Any) -> str:
    """The text that replaces `{name}` in the path, each value percent-encoded, the delimiters not."""

    def enc(part: str) -> str:
        return quote(part, safe="")

    if style == JSON or not isinstance(value, (list, dict)):
        body = enc(text(value))
        return {"label": "." + body, "matrix": f";{enc(name)}={body}"}.get(style, body)
    if isinstance(value, list):
        items = [enc(v) for v in _items(value)]
        if style == "label":
            return "." + ("." if explode else ",").join(items)
        if style == "matrix":
            return "".join(f";{enc(name)}={v}" for v in items) if explode else f";{enc(name)}=" + ",".join(items)
        return ",".join(items)
    pairs = [(enc(k), enc(v)) for k, v in _pairs(value)]
    flat = ",".join(f"{k},{v}" for k, v in pairs)
    if style == "label":
        return "." + (".".join(f"{k}={v}" for k, v in pairs) if explode else flat)
    if style == "matrix":
        return "".join(f";{k}={v}" for k, v in pairs) if explode else f";{enc(name)}={flat}"
    return ",".join(f"{k}={v}" for k, v in pairs) if explode else flat


def query_pairs(name: str, style: str, explode: bool, value: Any) -> list[tuple[str, str]]:
    """The (name, value) pairs a query parameter adds; the HTTP client percent-encodes them."""
    if style == JSON or not isinstance(value, (list, dict)):
        return [] if value is None else [(name, text(value))]
    if style == "deepObject":
        return _deep(name, value)
    if isinstance(value, list):
        items = _items(value)
        if explode and style == "form":
            return [(name, v) for v in items]
        return [(name, _JOINS.get(style, ",").join(items))]
    pairs = _pairs(value)
    if explode and style == "form":
        return pairs
    return [(name, _JOINS.get(style, ",").join(f"{k}{_JOINS.get(style, ',')}{v}" for k, v in pairs))]


def _deep(name: str, value: Any) -> list[tuple[str, str]]:
    """deepObject pairs as Rack, PHP and qs read them (OpenAPI defines one level of objects only):
    `name[a][b]=v` for nested objects, `name[]=v` for each of a list of scalars (Stripe's `expand`),
    `name[0][a]=v` for a list of objects or lists."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() if v is not None for pair in _deep(f"{name}[{k}]", v)]
    if isinstance(value, list):
        if not any(isinstance(v, (dict, list)) for v in value):
            return [(f"{name}[]", v) for v in _items(value)]
        return [pair for i, v in enumerate(value) if v is not None for pair in _deep(f"{name}[{i}]", v)]
    return [(name, text(value))]


def header_value(style: str, explode: bool, value: Any) -> str:
    if style == JSON or not isinstance(value, (list, dict)):
        return text(value)
    if isinstance(value, list):
        return ",".join(_items(value))
    return ",".join(f"{k}={v}" if explode else f"{k},{v}" for k, v in _pairs(value))


def cookie_pairs(name: str, style: str, explode: bool, value: Any) -> list[str]:
    """The `name=value` pieces of the Cookie header a cookie parameter adds (values percent-encoded)."""

    def enc(part: str) -> str:
        return quote(part, safe="")

    if style == JSON or not isinstance(value, (list, dict)):
        return [f"{name}={enc(text(value))}"]
    if isinstance(value, list):
        items = [enc(v) for v in _items(value)]
        return [f"{name}={v}" for v in items] if explode else [f"{name}=" + ",".join(items)]
    pairs = [(enc(k), enc(v)) for k, v in _pairs(value)]
    if explode:
        return [f"{k}={v}" for k, v in pairs]
    return [f"{name}=" + ",".join(f"{k},{v}" for k, v in pairs)]


def cookie_names(header: str) -> list[str]:
    """The names of the cookies a Cookie header (or one `name=value` piece of it) sets."""
    return [piece.partition("=")[0].strip() for piece in header.split(";") if piece.strip()]
