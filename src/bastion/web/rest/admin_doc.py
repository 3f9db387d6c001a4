"""Bastion's own REST API as an OpenAPI 3.1 document, built from the routes it serves.

Complete by construction: every route handed to the REST app appears (a test checks it), with its
path parameters, the request body schema where the route takes a documented body, problem+json
for failures, and the security it needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bastion import __version__
from bastion.control.tokens import TokenInput
from bastion.control.upstream_input import UpstreamInput
from bastion.control.users import NewUser, UserPatch
from bastion.core.config_doc import ConfigDoc
from bastion.core.facade_doc import COMMON_SCHEMAS, problems, schema_component
from bastion.web.rest.facade_page import docs_page
from bastion.web.rest.servers import ServerInput

DOC_PATH = "/api/v1/openapi.json"
DOCS_PAGE_PATH = "/api/v1/docs"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")
_PUBLIC = frozenset({"/api/v1/auth/login"})
_OWNED = {"team": {"type": ["string", "null"]}, "visibility": {"enum": ["private", "team", "public"]}}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_ITEM_PATCH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"enabled": {"type": "boolean"}, "name": {"type": ["string", "null"]}, "description": {"type": ["string", "null"]}},
}


def _query(name: str, kind: str, what: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": what, "schema": {"type": kind, **schema}}


_OFFSET = _query("offset", "integer", "The first item of the page (from 0)", minimum=0)
_PAGE = [_OFFSET, _query("limit", "integer", "Items in the page (every one from the offset when absent)", minimum=1, maximum=10000)]
_TIMES = [
    _query("since", "string", "From this time (ISO 8601; UTC when it has no offset)", format="date-time"),
    _query("until", "string", "Before this time (ISO 8601; UTC when it has no offset)", format="date-time"),
]
_AUDIT = [
    _query("limit", "integer", "Records in the page (default 100)", minimum=1, maximum=1000),
    _query("cursor", "integer", "The next_cursor of the page before (newest first)", minimum=0, maximum=2**31 - 1),
    _query("after", "integer", "Records after this id, oldest first", minimum=0, maximum=2**31 - 1),
    *_TIMES,
    *(_query(n, "string", f"Only records with this {n}") for n in ("action", "actor", "target", "outcome", "server")),
]
_SEARCH = [_query("q", "string", "Words to look for"), _query("limit", "integer", "At most this many (default 50)", minimum=1, maximum=500)]
_CATALOG = [
    _query("q", "string", "Words to look for"), _query("upstream", "string", "Only this upstream's items"),
    _query("enabled", "boolean", "Only enabled (true) or disabled (false) items"), *_PAGE,
]
_USAGE = [
    *_TIMES, *(_query(n, "string", f"Only this {n}") for n in ("server", "upstream", "tool")),
    _query("group_by", "string", "How the figures are grouped (default item)"), *_PAGE,
]
_UPSTREAM_FILTER = [_query("upstream", "string", "Only this upstream's"), *_PAGE]
QUERIES: dict[str, list[dict[str, Any]]] = {
    "/api/v1/audit": _AUDIT,
    "/api/v1/registries/search": [*_SEARCH, _query("source", "string", "Only this registry source")],
    "/api/v1/registries/{source}/servers": _SEARCH,
    "/api/v1/usage": _USAGE,
    "/api/v1/usage/unused": [_query("days", "number", "Not called in this many days (default 30)", exclusiveMinimum=0), *_PAGE],
    "/api/v1/approvals": _UPSTREAM_FILTER,
    "/api/v1/catalog/duplicates": _UPSTREAM_FILTER,
    **{f"/api/v1/{c}": _CATALOG for c in ("tools", "prompts", "resources")},
    **{f"/api/v1/{c}": _PAGE for c in ("servers", "upstreams", "tokens", "users", "teams", "registries", "registries/updates")},
}
"""The query parameters of the GET lists (paging, filters), by path."""


def _model(model: type[BaseModel], owned: bool = False) -> dict[str, Any]:
    schema = model.model_json_schema()
    if owned:
        schema["properties"] = {**schema.get("properties", {}), **_OWNED}
    return schema


def _bodies() -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """Request bodies by (method, path): a component name and its schema."""
    catalog = {("PATCH", f"/api/v1/{c}/{{name}}"): ("CatalogItemPatch", _ITEM_PATCH) for c in ("tools", "prompts", "resources")}
    return {
        ("POST", "/api/v1/upstreams"): ("UpstreamInput", _model(UpstreamInput, owned=True)),
        ("POST", "/api/v1/config"): ("ConfigDoc", _model(ConfigDoc)),
        ("PATCH", "/api/v1/upstreams/{name}"): ("UpstreamPatch", _ANY_OBJECT),
        ("POST", "/api/v1/servers"): ("ServerInput", _model(ServerInput, owned=True)),
        ("PATCH", "/api/v1/servers/{name}"): ("ServerPatch", _ANY_OBJECT),
        ("POST", "/api/v1/tokens"): ("TokenInput", _model(TokenInput)),
        ("POST", "/api/v1/users"): ("NewUser", _model(NewUser)),
        ("PATCH", "/api/v1/users/{id}"): ("UserPatch", _model(UserPatch)),
        ("POST", "/api/v1/teams"): ("NewTeam", {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}),
        ("POST", "/api/v1/teams/{name}/members"): (
            "NewMember",
            {"type": "object", "required": ["user"], "properties": {"user": {"type": "string"}}, "additionalProperties": False},
        ),
        ("POST", "/api/v1/auth/login"): (
            "Login",
            {
                "type": "object",
                "required": ["email", "password"],
                "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
            },
        ),
        ("POST", "/api/v1/servers/{name}/tools/{tool}"): ("ToolArguments", _ANY_OBJECT),
        ("POST", "/api/v1/servers/{name}/prompts/{prompt}"): (
            "PromptArguments",
            {"type": "object", "additionalProperties": {"type": "string"}},
        ),
        **catalog,
    }


def _summary(route: Route, method: str, path: str) -> str:
    doc = (route.endpoint.__doc__ or "").strip().splitlines()
    return doc[0].strip().rstrip(".")[:200] if doc and doc[0].strip() else f"{method} {path}"


def _operation(route: Route, method: str, path: str, schemas: dict[str, Any], bodies: dict[Any, Any], ids: set[str]) -> dict[str, Any]:
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", path.removeprefix("/api/v1/")) if p]
    op_id = "_".join([method.lower(), *parts]) or method.lower()
    while op_id in ids:
        op_id += "_"
    ids.add(op_id)
    tag = path.split("/")[3] if path.startswith("/api/v1/") and len(path.split("/")) > 3 else "probes"
    operation: dict[str, Any] = {"operationId": op_id, "summary": _summary(route, method, path), "tags": [tag]}
    names = _PARAM.findall(path)
    if names:
        operation["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]
    if method == "GET" and path in QUERIES:
        operation.setdefault("parameters", []).extend(QUERIES[path])
    if path.endswith("/resources/read"):
        operation.setdefault("parameters", []).append({"name": "uri", "in": "query", "required": True, "schema": {"type": "string"}})
    body = bodies.get((method, path))
    if body is not None:
        ref = schema_component(schemas, body[0], body[1])
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    media = "text/html" if path.endswith("/docs") else "application/json"
    ok = {"description": "Success", "content": {media: {"schema": {}}}}
    responses: dict[str, Any] = {"200": ok, **problems(*(["422"] if body is not None else []))}
    if method == "POST":
        responses["201"] = ok
    if method in ("DELETE", "POST"):
        responses["204"] = {"description": "Done, nothing to say"}
    responses["409"] = {
        "description": "Conflicts with the current state",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    operation["responses"] = dict(sorted(responses.items()))
    if path in _PUBLIC:
        operation["security"] = []
    return operation


def admin_document(routes: Sequence[BaseRoute], base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in `routes` (the REST app's), plus the probes."""
    schemas: dict[str, Any] = dict(COMMON_SCHEMAS)
    bodies = _bodies()
    paths: dict[str, dict[str, Any]] = {}
    ids: set[str] = set()
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/v1/"):
            continue
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, path, schemas, bodies, ids)
    for probe, what in (("/healthz", "Alive"), ("/readyz", "Able to serve (503 with the problems when not)")):
        ok = {"description": what, "content": {"application/json": {"schema": _ANY_OBJECT}}}
        paths[probe] = {"get": {"operationId": probe.strip("/"), "summary": what, "tags": ["probes"], "security": [],
                                "responses": {"200": ok, "503": ok}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bastion admin and facade API", "version": __version__,
                 "description": "Configure upstreams, virtual servers, tokens, users and teams; call servers over REST."},
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def admin_doc_routes(routes: Sequence[BaseRoute], base_url: str) -> list[Route]:
    """/api/v1/openapi.json and its HTML page, describing `routes` and themselves."""
    own: list[BaseRoute] = []

    def document() -> dict[str, Any]:
        return admin_document([*routes, *own], base_url)

    async def openapi(_request: Request) -> Response:
        """Bastion's own API as an OpenAPI 3.1 document."""
        return JSONResponse(document())

    async def docs(_request: Request) -> Response:
        """Bastion's own API as an HTML page."""
        page, policy = docs_page(document())
        return HTMLResponse(page, headers={"content-security-policy": policy})

    own.extend([Route(DOC_PATH, openapi, methods=["GET"]), Route(DOCS_PAGE_PATH, docs, methods=["GET"])])
    return [r for r in own if isinstance(r, Route)]
