"""What an OpenAPI path key asks for, when real documents write it loosely: a `{name}` template that
no parameter declares is a required string path parameter, and a `?query` written into the key is
sent as the query it is. Pure.

Real documents do both (APIs.guru's directory: DigitalOcean's, openSUSE's and Codat's templates
without parameters; Flickr's `/rest?method=flickr.photos.search`, ClickSend's
`/sms/history?date_from={date_from}` with `date_from` declared `in: path`). Sent as written, the first
reached `/apps/%7Bapp_id%7D`, and the second lost its query: the HTTP client replaces the URL's query
with the parameters'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

_TEMPLATE = re.compile(r"\{([^{}]*)\}")
_STYLE_KEYS = ("style", "explode", "allowReserved")


class UnusablePath(ValueError):
    """One operation's path key cannot be sent as written means (the message says why): it alone is
    left out of the tools, the rest of the document is imported."""


@dataclass(frozen=True)
class PathShape:
    path: str
    """The key without its query: each template in it names a path parameter."""
    query: tuple[tuple[str, str], ...]
    """The literal pairs of the key's query (`?method=a.b`), sent before the parameters' own."""
    parameters: tuple[dict[str, Any], ...]
    """The operation's parameters: templates no parameter declared added as required strings, those
    the key's query places (`?q={query}`) moved to the query under the name it gives them, and query
    parameters whose value the key fixes left out."""


def path_shape(key: str, parameters: list[dict[str, Any]]) -> PathShape:
    """How an operation at path `key` with these (merged, dereferenced) `parameters` is sent."""
    path, mark, query_text = key.partition("?")
    params = list(parameters)
    in_path = _TEMPLATE.findall(path)
    if "" in in_path:
        raise UnusablePath("its path has an empty template '{}'")
    declared = {p["name"] for p in params if p.get("in") == "path"}
    for name in dict.fromkeys(in_path):
        if name not in declared:
            params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    fixed: list[tuple[str, str]] = []
    for pair in query_text.split("&") if mark else ():
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name, value = unquote_plus(raw_name), unquote_plus(raw_value)
        if "{" in name or "}" in name:
            raise UnusablePath(f"the query in its path names a parameter by a template ({raw_name[:100]!r}): what to send is unclear")
        template = _TEMPLATE.fullmatch(value)
        if template is None:
            if "{" in value or "}" in value:
                raise UnusablePath(f"the query in its path has a template inside a value ({pair[:100]!r})")
            fixed.append((name, value))
            # The key fixes this value (it tells operations at one path apart): none to choose.
            params = [p for p in params if not (p.get("in") == "query" and p["name"] == name)]
            continue
        params = _moved_to_query(params, template.group(1), name, in_path)
    return PathShape(path, tuple(fixed), tuple(params))


def _moved_to_query(params: list[dict[str, Any]], template: str, name: str, in_path: list[str]) -> list[dict[str, Any]]:
    """`params` once the parameter `template` (`?name={template}`) is the query parameter `name`: a
    path one keeps its schema, description and `required`, not its path style; one no parameter
    declares is an optional string, as a query pair may be left out where a path segment may not."""
    if template in in_path:
        raise UnusablePath(f"{{{template}}} stands both in its path and in the query in its path")
    found = [p for p in params if p["name"] == template and p.get("in") in ("path", "query")]
    if any(p["name"] == name and p.get("in") == "query" and p["name"] != template for p in params):
        raise UnusablePath(f"the query in its path sets {name!r}, which a query parameter also declares")
    moved = {"name": name, "in": "query", "schema": {"type": "string"}}
    if found:
        source = found[-1]
        moved = {**source, "name": name, "in": "query"}
        if source.get("in") == "path":
            moved = {k: v for k, v in moved.items() if k not in _STYLE_KEYS}
    return [p for p in params if not any(p is f for f in found)] + [moved]
