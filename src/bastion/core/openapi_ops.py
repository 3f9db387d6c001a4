"""The operations of an OpenAPI document (3.0 or 3.1, or Swagger 2.0 converted to 3.0 terms) as
tools: a stable name, a description, an input schema merged from the parameters and the JSON or form
body (local $refs resolved), an output schema from the 2xx response, and how a call's arguments map
back onto the HTTP request. Pure.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Literal

from bastion.core.models import Selection
from bastion.core.openapi_access import Omitted, OneWay, without
from bastion.core.openapi_headers import header_settable, withheld_note
from bastion.core.openapi_paths import UnusablePath, path_shape
from bastion.core.openapi_refs import (
    FORM,
    LOCATIONS,
    MAX_DEPTH,
    MAX_SCHEMA_NODES,
    METHODS,
    MULTIPART,
    Resolver,
    SpecError,
    TooLarge,
)
from bastion.core.openapi_sizes import JsonSizes
from bastion.core.openapi_styles import cookie_pairs, header_value, path_value, query_pairs, style_of, text
from bastion.core.openapi_swagger import as_openapi3

SHALLOWER = (3, 1)
"""How many references deep schemas are inlined when a document's expand past the limits of
core/openapi_refs.py in full (Stripe's, Microsoft Graph's, DocuSign's: densely linked schemas, millions
of nodes): deeper ones are named, not described. Only when even these are too large is the document refused."""
MAX_NAME = 64
MAX_TOOL_BYTES = 256 * 1024
"""Most bytes of JSON one tool's definition may take. Clients hand every tool's definition to the model
with each request: Google Docs' documents.create (2 MB once its schemas are inlined) or Sheets'
batchUpdate would fill a model's context alone. Of APIs.guru's 91,423 operations, 225 are larger
(Kubernetes', DocuSign's, Google Wallet's): their schemas are inlined fewer references deep (SHALLOWER),
as a document's are when it expands too far, its output schema left out first; one still larger is
left out, saying so."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
Body = Literal["none", "merged", "wrapped", "raw"]


def _object(value: Any, what: str) -> dict[str, Any]:
    """`value` if it is an object, {} if absent; anything else makes the document unusable."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{what} is not an object")
    return value


def _array(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{what} is not a list")
    return value


class ToolTooLarge(ValueError):
    """One operation's tool is larger than MAX_TOOL_BYTES even with its schemas inlined one reference deep."""


class ArgumentError(ValueError):
    """A call's arguments cannot make the operation's request (the message says why, not the value)."""


_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_SUCCESS = re.compile(r"2(?:[0-9]{2}|XX)", re.IGNORECASE)


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    argument: str
    style: str = "simple"
    """How its value travels (core/openapi_styles.py): an OpenAPI style, or `json` (described by `content`)."""
    explode: bool = False
    omitted: Omitted | None = None
    """The read-only properties of its value (an object's), which a request leaves out."""


@dataclass(frozen=True)
class Operation:
    tool: str
    method: str
    path: str
    params: tuple[Param, ...]
    body: Body
    body_fields: frozenset[str]
    """The arguments that make the body: its fields (merged), or the one that is the whole body."""
    media_type: str | None
    definition: dict[str, Any]
    server: str | None = None
    """The operation's own server (its `servers`, else its path item's), when it names one: a URL,
    perhaps relative to the document's."""
    query: tuple[tuple[str, str], ...] = ()
    """The query its path key fixes (`/rest?method=a.b`): sent before its parameters'."""
    omitted: Omitted | None = None
    """The read-only properties of its body, which a request leaves out (core/openapi_access.py)."""
    form_styles: tuple[tuple[str, str, bool], ...] = ()
    """(field, style, explode) for each field of its form body whose `encoding` gives a style."""
    file_fields: frozenset[str] = frozenset()
    """The fields of its multipart body that are files, whether the body is merged or wrapped."""
    withheld: tuple[str, ...] = ()
    """What it leaves out that the document offers, each saying which and why (a header a proxy sets)."""


@dataclass(frozen=True)
class HttpCall:
    """What a tool call amounts to, relative to the API's base URL."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    json_body: Any = None
    """The body as data: JSON, or form fields when `media_type` is a form type (see form_fields)."""
    raw_body: str | None = None
    media_type: str | None = None
    cookies: tuple[str, ...] = ()
    """The `name=value` pieces of its Cookie header (see cookie_header), beside the operator's."""


def server_url(servers: Any) -> str | None:
    """The URL of the first of `servers`, its variables replaced by their defaults (None if none)."""
    if not (isinstance(servers, list) and servers and isinstance(servers[0], dict) and isinstance(servers[0].get("url"), str)):
        return None
    url = str(servers[0]["url"])
    variables = servers[0].get("variables")
    for name, variable in (variables if isinstance(variables, dict) else {}).items():
        if isinstance(variable, dict) and "default" in variable:
            url = url.replace("{" + str(name) + "}", str(variable["default"]))
    return url


def is_form(media_type: str | None) -> bool:
    return media_type in (FORM, MULTIPART)


def form_fields(body: Any, styles: tuple[tuple[str, str, bool], ...] = ()) -> list[tuple[str, str]]:
    """A form body's fields in order: those `styles` names as a query parameter of that style would
    travel; otherwise lists repeat their field and objects travel as JSON text."""
    if not isinstance(body, dict):
        return []
    styled = {name: (style, explode) for name, style, explode in styles}
    fields: list[tuple[str, str]] = []
    for key, value in body.items():
        if key in styled and value is not None:
            fields.extend(query_pairs(str(key), *styled[key], value))
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                fields.append((str(key), json.dumps(item) if isinstance(item, (dict, list)) else text(item)))
    return fields


def tool_name(operation: dict[str, Any], method: str, path: str) -> str:
    """operationId, else method and path, reduced to the characters MCP tool names allow: accents are
    dropped (`créer` is `creer`); an operationId in another script says nothing in ASCII, so the
    method and path name the tool instead."""
    raw = operation.get("operationId")
    if isinstance(raw, str):
        raw = "".join(c for c in unicodedata.normalize("NFKD", raw) if not unicodedata.combining(c))
    if not isinstance(raw, str) or not raw.isascii() or not _UNSAFE.sub("", raw):
        raw = re.sub(r"[^A-Za-z0-9]+", "_", f"{method}_{path}")
    name = _UNSAFE.sub("_", raw).strip("_")[:MAX_NAME]
    return name or method


def selected(selection: Selection, op_id: str | None, tags: list[str], path: str) -> bool:
    return (
        (op_id is not None and op_id in selection.operations)
        or any(t in selection.tags for t in tags)
        or any(fnmatchcase(path, glob) for glob in selection.paths)
    )


def _media_schema(media: str, entry: Any) -> tuple[str, Any]:
    return media, _object(entry, f"media type {media[:100]!r}").get("schema", {})


def _json_media(content: Any) -> tuple[str, Any] | None:
    if not isinstance(content, dict):
        return None
    for media, entry in content.items():
        media = str(media)
        if media == "application/json" or (media.endswith("+json") or media.endswith("/json")):
            return _media_schema(media, entry)
    return None


def _form_media(content: Any) -> tuple[str, Any] | None:
    if not isinstance(content, dict):
        return None
    for media in (FORM, MULTIPART):
        entry = content.get(media)
        if entry is not None:
            return _media_schema(media, entry)
    return None


def _settable(param: dict[str, Any], reserved: frozenset[tuple[str, str]]) -> bool:
    """Whether a caller may set this parameter: not one the operator's credentials or the request's
    own framing occupy, nor one a proxy sets (core/openapi_headers.py); and (a header) named as HTTP can send it."""
    name, location = param["name"], param["in"]
    return header_settable(name, reserved) if location == "header" else (location, name) not in reserved


def _parameters(resolver: Resolver, path_item: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for source in (path_item.get("parameters"), operation.get("parameters")):
        for raw in _array(source, "'parameters'"):
            param = resolver.deref(raw)
            if isinstance(param, dict) and isinstance(param.get("name"), str) and param.get("in") in LOCATIONS:
                merged[(param["name"], param["in"])] = param
    return list(merged.values())


def _output_schema(resolver: Resolver, one_way: OneWay, operation: dict[str, Any]) -> dict[str, Any] | None:
    # Keys as YAML reads them may be integers, floats or dates: each is compared as text.
    responses = {str(code): raw for code, raw in _object(operation.get("responses"), "'responses'").items()}
    for code in sorted(responses):
        if _SUCCESS.fullmatch(code):
            found = _json_media(_object(resolver.deref(responses[code]), f"response {code[:20]!r}").get("content"))
            if found is not None:
                schema = one_way.for_responses(resolver.schema(found[1]))
                if _is_object(schema):
                    # What the document says it answers, for the caller to read, but not a promise an
                    # MCP client holds the answer to: real APIs answer with more, less or null, and a
                    # client that finds an answer off its tool's output schema fails the call.
                    return {"type": "object", "anyOf": [schema, {"type": "object"}]}
            return None
    return None


def _is_object(schema: Any) -> bool:
    """Whether `schema` describes a JSON object: typed so, or all of its `allOf` are."""
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "object":
        return True
    parts = schema.get("allOf")
    return "type" not in schema and isinstance(parts, list) and bool(parts) and all(_is_object(p) for p in parts)


def _operation(
    resolver: Resolver, one_way: OneWay, tool: str, method: str, path: str, path_item: dict[str, Any], op: dict[str, Any],
    reserved: frozenset[tuple[str, str]],
) -> Operation:
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[Param] = []
    shape = path_shape(path, _parameters(resolver, path_item, op))
    withheld = tuple(
        note for p in shape.parameters
        if p["in"] == "header" and (note := withheld_note(p["name"], bool(p.get("required")), reserved)) is not None
    )
    for param in (p for p in shape.parameters if _settable(p, reserved)):
        name, location = param["name"], param["in"]
        argument = _free(properties, name, f"{location}_{name}")
        schema = param.get("schema")
        if schema is None:
            found = _json_media(param.get("content"))
            schema = found[1] if found else {"type": "string"}
        schema, omitted_here = one_way.for_requests(resolver.schema(schema))
        schema = dict(schema) if isinstance(schema, dict) else {}
        if isinstance(param.get("description"), str) and "description" not in schema:
            schema["description"] = param["description"]
        properties[argument] = schema
        if param.get("required") or location == "path":
            required.append(argument)
        params.append(Param(name, location, argument, *style_of(param), omitted_here))
    body, body_fields, media, omitted = _request_body(resolver, one_way, op, properties, required)
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = list(dict.fromkeys(required))
    text = [str(op[k]).strip() for k in ("summary", "description") if isinstance(op.get(k), str) and op[k].strip()]
    definition: dict[str, Any] = {
        "name": tool,
        "description": "\n\n".join([*text, f"{method.upper()} {path}"]),
        "inputSchema": input_schema,
        "annotations": {
            "readOnlyHint": method in ("get", "head", "options"),
            "destructiveHint": method == "delete",
            "idempotentHint": method in ("get", "head", "options", "put", "delete"),
            "openWorldHint": True,
        },
    }
    if isinstance(op.get("summary"), str):
        definition["title"] = op["summary"][:200]
    output = _output_schema(resolver, one_way, op)
    if output is not None:
        definition["outputSchema"] = output
    server = server_url(op.get("servers")) or server_url(path_item.get("servers"))
    styles = _form_styles(resolver, op) if media == FORM else ()
    files = frozenset[str]()
    if media == MULTIPART:  # the body's own schema, wherever it sits among the arguments
        fields = {f: properties[f] for f in body_fields}
        files = _file_fields(properties[next(iter(body_fields))] if body == "wrapped" else {"properties": fields})
    return Operation(
        tool, method, shape.path, tuple(params), body, body_fields, media, definition, server, shape.query, omitted, styles, files,
        withheld,
    )


def _file_fields(schema: Any) -> frozenset[str]:
    """The properties of a multipart body described by `schema` (and its `allOf` parts) that are files,
    or lists of files: `format: binary`, or OpenAPI 3.1's `contentMediaType`."""
    if not isinstance(schema, dict):
        return frozenset()
    properties = schema.get("properties")
    names = {str(k) for k, v in (properties if isinstance(properties, dict) else {}).items() if _is_file(v)}
    parts = schema.get("allOf")
    for part in parts if isinstance(parts, list) else ():
        names |= _file_fields(part)
    return frozenset(names)


def _is_file(schema: Any) -> bool:
    if isinstance(schema, dict) and schema.get("type") == "array":
        schema = schema.get("items")
    return isinstance(schema, dict) and (schema.get("format") == "binary" or "contentMediaType" in schema)


def _form_styles(resolver: Resolver, op: dict[str, Any]) -> tuple[tuple[str, str, bool], ...]:
    """How the fields of `op`'s form body travel, for those its `encoding` gives a style or explode
    (Stripe's: deepObject, so `address[city]=...`); the others as form_fields sends them."""
    media = _object(resolver.deref(op.get("requestBody")), "'requestBody'").get("content", {}).get(FORM)
    encoding = _object(media, "the form body").get("encoding") if isinstance(media, dict) else None
    styles = []
    for field_name, how in (encoding if isinstance(encoding, dict) else {}).items():
        if isinstance(how, dict) and ("style" in how or "explode" in how):
            styles.append((str(field_name), *style_of({"in": "query", **how})))
    return tuple(styles)


def _free(taken: dict[str, Any], *names: str) -> str:
    """The first of `names` no argument has taken yet, else the last numbered (`query_id_2`)."""
    n = 1
    while True:
        for name in names if n == 1 else (f"{names[-1]}_{n}",):
            if name not in taken:
                return name
        n += 1


def _request_body(
    resolver: Resolver, one_way: OneWay, op: dict[str, Any], properties: dict[str, Any], required: list[str]
) -> tuple[Body, frozenset[str], str | None, Omitted | None]:
    """How `op`'s body travels, its arguments added to `properties` (and `required`) beside the
    parameters'; the arguments that make it; its media type; and what a request leaves out of it."""
    request_body = resolver.deref(op.get("requestBody"))
    if not (isinstance(request_body, dict) and isinstance(request_body.get("content"), dict) and request_body["content"]):
        return "none", frozenset(), None, None
    found = _json_media(request_body["content"]) or _form_media(request_body["content"])
    whole = _free(properties, "body", "request_body")  # a parameter may be named `body`
    if found is None:
        media = str(next(iter(request_body["content"])))
        properties[whole] = {"type": "string", "description": f"The request body ({media})"}
        kind: Body = "raw"
    else:
        media = found[0]
        schema, omitted = one_way.for_requests(resolver.schema(found[1]))
        fields = schema.get("properties") if isinstance(schema, dict) else None
        if isinstance(fields, dict) and fields and not (set(fields) & set(properties)) and _names_every_key(schema):
            properties.update(fields)
            if request_body.get("required"):
                required.extend(r for r in _names(schema.get("required"), "the body's 'required'") if r in fields)
            return "merged", frozenset(fields), media, omitted
        properties[whole] = schema if isinstance(schema, dict) else {}
        kind = "wrapped"
    if request_body.get("required"):
        required.append(whole)
    return kind, frozenset({whole}), media, omitted if kind == "wrapped" else None


def _names_every_key(schema: dict[str, Any]) -> bool:
    """Whether the fields of a body described by `schema` are its `properties` alone (no `allOf`
    parts to merge, no keys `additionalProperties` or `patternProperties` let a caller name): so
    the tool may take them as arguments of their own."""
    extra = schema.get("additionalProperties")
    return "allOf" not in schema and not schema.get("patternProperties") and (extra is None or extra is False)


def _names(value: Any, what: str) -> list[str]:
    names = _array(value, what)
    if not all(isinstance(n, str) for n in names):
        raise SpecError(f"{what} is not a list of names")
    return names


def operations(
    doc: Any, include: Selection = Selection(), exclude: Selection = Selection(), *,
    reserved: frozenset[tuple[str, str]] = frozenset(), limit: int | None = None, skipped: list[str] | None = None,
) -> list[Operation]:
    """Every selected operation of `doc` as a tool, in document order, with unique tool names.
    Parameters in `reserved` ((location, name), header names in lower case) are the operator's to set:
    no tool offers them. More than `limit` operations selected make the document unusable. An
    operation whose path key cannot be sent as it means is left out, `METHOD /path: why` in `skipped`,
    as is a header parameter a proxy sets (core/openapi_headers.py), the operation offered without it."""
    doc = as_openapi3(doc)
    paths = doc.get("paths", {})
    if paths is None:
        paths = {}
    if not isinstance(paths, dict):
        raise SpecError("'paths' is not an object")
    for nesting in (MAX_DEPTH, *SHALLOWER):
        left_out: list[str] = []
        try:
            found = _operations(Resolver(doc, nesting), paths, include, exclude, reserved, limit, left_out)
        except TooLarge:
            continue
        if skipped is not None:
            skipped.extend(left_out)
        return found
    raise SpecError(f"the document's schemas expand past {MAX_SCHEMA_NODES} nodes even with references inlined one deep")


def _operations(
    resolver: Resolver, paths: dict[str, Any], include: Selection, exclude: Selection,
    reserved: frozenset[tuple[str, str]], limit: int | None, skipped: list[str],
) -> list[Operation]:
    out: list[Operation] = []
    # Operations built but not yet held to MAX_TOOL_BYTES, and in their place those left out: a pass
    # whose schemas expand too far (TooLarge) is thrown away, so sizing waits for the pass to finish
    # (or for the limit to be passed, which only operations that fit count towards).
    pending: list[_Built | str] = []
    used: set[str] = set()
    one_way = OneWay(resolver.doc)
    sizes = JsonSizes()
    for path, raw_item in paths.items():
        path_item = resolver.deref(raw_item)
        if not isinstance(path_item, dict):
            continue
        for method in METHODS:
            op = path_item.get(method)
            if not isinstance(op, dict):
                continue
            resolver.operation_start = resolver.nodes
            try:
                operation = _selected_operation(resolver, one_way, used, method, str(path), path_item, op, include, exclude, reserved)
            except TooLarge:
                raise
            except UnusablePath as exc:
                pending.append(_left_out(method, str(path), exc))
                continue
            except SpecError as exc:
                raise SpecError(f"{method.upper()} {str(path)[:200]}: {exc}") from None
            if operation is not None:
                pending.append(_Built(operation, method, str(path), path_item, op))
            if limit is not None and len(out) + len(pending) > limit:
                _fit_all(resolver, one_way, sizes, reserved, pending, out, skipped)
                if len(out) > limit:
                    raise SpecError(
                        f"it has more than {limit} operations, the most Bastion accepts from one upstream"
                        " (BASTION_UPSTREAM_MAX_ITEMS): select some with 'include' or 'exclude'"
                    )
    _fit_all(resolver, one_way, sizes, reserved, pending, out, skipped)
    return out


def _left_out(method: str, path: str, why: Exception | str) -> str:
    return f"{method.upper()} {path[:200]}: {why}"


@dataclass(frozen=True)
class _Built:
    """An operation's tool as first built, and what it was built from, to build it again smaller."""

    operation: Operation
    method: str
    path: str
    path_item: dict[str, Any]
    op: dict[str, Any]


def _fit_all(
    resolver: Resolver, one_way: OneWay, sizes: JsonSizes, reserved: frozenset[tuple[str, str]], pending: list[_Built | str],
    out: list[Operation], skipped: list[str],
) -> None:
    """Each pending operation as it fits MAX_TOOL_BYTES into `out` (and what it withholds into `skipped`),
    or why not into `skipped`, in order."""
    for built in pending:
        if isinstance(built, str):
            skipped.append(built)
            continue
        try:
            out.append(_fitted(resolver, one_way, sizes, reserved, built))
        except ToolTooLarge as exc:
            skipped.append(_left_out(built.method, built.path, exc))
            continue
        skipped.extend(_left_out(built.method, built.path, note) for note in built.operation.withheld)
    pending.clear()


def _selected_operation(
    resolver: Resolver, one_way: OneWay, used: set[str], method: str, path: str, path_item: dict[str, Any], op: dict[str, Any],
    include: Selection, exclude: Selection, reserved: frozenset[tuple[str, str]],
) -> Operation | None:
    op_id = op.get("operationId") if isinstance(op.get("operationId"), str) else None
    tags = [t for t in _array(op.get("tags"), "'tags'") if isinstance(t, str)]
    if not include.empty() and not selected(include, op_id, tags, path):
        return None
    if selected(exclude, op_id, tags, path):
        return None
    name, n = tool_name(op, method, path), 1
    base = name
    while name in used:
        n += 1
        name = f"{base[: MAX_NAME - 4]}_{n}"
    used.add(name)
    return _operation(resolver, one_way, name, method, path, path_item, op, reserved)


def _fitted(resolver: Resolver, one_way: OneWay, sizes: JsonSizes, reserved: frozenset[tuple[str, str]], built: _Built) -> Operation:
    """`built` held to MAX_TOOL_BYTES. What the tool answers is there for the model to read, and what
    it takes is what it needs to call it: the output schema goes first, then the input's depth."""
    if sizes.of(built.operation.definition) <= MAX_TOOL_BYTES:
        return built.operation
    operation = _inputs_only(built.operation)
    size = sizes.of(operation.definition)
    for nesting in SHALLOWER:
        if size <= MAX_TOOL_BYTES:
            break
        if nesting < resolver.nesting:
            again = _operation(Resolver(resolver.doc, nesting), one_way, operation.tool, built.method, built.path, built.path_item, built.op, reserved)
            operation = _inputs_only(again)
            size = sizes.of(operation.definition)
    if size > MAX_TOOL_BYTES:
        raise ToolTooLarge(
            f"its tool's definition takes {size // 1024} KB even without an output schema and with its schemas"
            f" described one reference deep, past the {MAX_TOOL_BYTES // 1024} KB one tool may take"
        )
    return operation


def _inputs_only(operation: Operation) -> Operation:
    return replace(operation, definition={k: v for k, v in operation.definition.items() if k != "outputSchema"})


def http_call(op: Operation, arguments: dict[str, Any]) -> HttpCall:
    """The request a call with `arguments` makes (arguments already checked against the schema)."""
    path = op.path
    query = list(op.query)
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for param in op.params:
        if param.argument not in arguments:
            if param.location == "path":
                raise ArgumentError(f"missing the path parameter {param.argument!r}")
            continue
        value = without(arguments[param.argument], param.omitted)
        if param.location == "path":
            piece = path_value(param.name, param.style, param.explode, value)
            # A dot segment would be removed by URL normalisation and reach another path of the API.
            if text(value) in ("", ".", "..") or piece in ("", ".", ".."):
                raise ArgumentError(f"the path parameter {param.argument!r} must not be empty, '.' or '..'")
            path = path.replace("{" + param.name + "}", piece)
            if any(segment in (".", "..") for segment in path.split("/")):
                raise ArgumentError(f"the path parameter {param.argument!r} must not make a '.' or '..' segment")
        elif param.location == "query":
            query.extend(query_pairs(param.name, param.style, param.explode, value))
        elif param.location == "header":
            header = header_value(param.style, param.explode, value)
            if not _HEADER_VALUE.fullmatch(header):
                raise ArgumentError(f"the header parameter {param.argument!r} must be printable ASCII")
            headers[param.name] = header
        elif value is not None:
            cookies.extend(cookie_pairs(param.name, param.style, param.explode, value))
    call = HttpCall(op.method.upper(), path, tuple(query), headers, cookies=tuple(cookies))
    whole = next(iter(op.body_fields), "")
    if op.body == "merged":
        fields = without({k: v for k, v in arguments.items() if k in op.body_fields}, op.omitted)
        return replace(call, json_body=fields, media_type=op.media_type)
    if op.body == "wrapped" and whole in arguments:
        return replace(call, json_body=without(arguments[whole], op.omitted), media_type=op.media_type)
    if op.body == "raw" and whole in arguments:
        return replace(call, raw_body=text(arguments[whole]), media_type=op.media_type)
    return call
