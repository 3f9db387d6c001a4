"""REST: /api/v1/registries — MCP Registry sources, their cached listings, and one-step install."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.registry import Registries
from bastion.core.errors import BadRequest, Forbidden
from bastion.core.identity import can_edit, can_see, is_admin
from bastion.core.registry import requirements
from bastion.core.registry_listing import RegistryEntry, RegistrySource
from bastion.web.rest.access import TeamExists, ownership, principal_of, require_pin
from bastion.web.rest.common import read_json, require_object, upstream_json
from bastion.web.rest.listing import count, only_paging, paged

_INSTALL_FIELDS = {"server", "version", "name", "values", "prefer", "team", "visibility", "pin"}


def source_json(source: RegistrySource) -> dict[str, Any]:
    return source.model_dump(mode="json")


def entry_json(entry: RegistryEntry, *, full: bool = False) -> dict[str, Any]:
    doc = entry.document
    out: dict[str, Any] = {
        "source": entry.source, "name": entry.name, "version": entry.version, "latest": entry.latest,
        "title": doc.get("title"), "description": doc.get("description"), "status": entry.status,
        "remotes": [r.get("type") for r in doc.get("remotes", [])],
        "packages": [p.get("registryType") for p in doc.get("packages", [])],
    }
    if full:
        out["server"] = doc
        try:
            out["requirements"] = [r.model_dump() for r in requirements(doc)]
        except BadRequest as exc:
            out["requirements"] = []
            out["installable"] = exc.detail
    return out


def _require_admin(request: Request, what: str) -> None:
    if not is_admin(principal_of(request)):
        raise Forbidden(f"only an admin may {what}", missing="role:admin")


def _str_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRequest(f"{field!r} must be an object of strings")
    return value


def registry_routes(registries: Registries, max_body: int, team_exists: TeamExists | None = None) -> list[Route]:
    async def list_sources(request: Request) -> Response:
        return JSONResponse(paged(request, [source_json(s) for s in await registries.repo.list_sources()]))

    async def add(request: Request) -> Response:
        _require_admin(request, "add registry sources")
        body = require_object(await read_json(request, max_body))
        unknown = set(body) - {"name", "url", "path"}
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}; give name and url or path")
        name, url, path = body.get("name"), body.get("url"), body.get("path")
        if not isinstance(name, str) or any(v is not None and not isinstance(v, str) for v in (url, path)):
            raise BadRequest("'name', 'url' and 'path' must be strings")
        source = await registries.add(name, url=url, path=path)
        return JSONResponse(source_json(source), status_code=201)

    async def get(request: Request) -> Response:
        return JSONResponse(source_json(await registries.source(request.path_params["source"])))

    async def delete(request: Request) -> Response:
        _require_admin(request, "remove registry sources")
        await registries.remove(request.path_params["source"])
        return Response(status_code=204)

    async def refresh(request: Request) -> Response:
        _require_admin(request, "refresh registry sources")
        full = request.query_params.get("full", "").lower() in ("1", "true", "yes")
        return JSONResponse(source_json(await registries.refresh(request.path_params["source"], full=full)))

    async def search(request: Request) -> Response:
        text = request.query_params.get("q", "")
        source = request.query_params.get("source") or request.path_params.get("source")
        only_paging(request, "limit")
        found = await registries.search(text, source, count(request, "limit", 50, 1, 500))
        return JSONResponse({"items": [entry_json(e) for e in found]})

    async def entry(request: Request) -> Response:
        server = request.query_params.get("server")
        if not server:
            raise BadRequest("say which server: ?server=NAME[&version=V]")
        found = await registries.entry(request.path_params["source"], server, request.query_params.get("version"))
        versions = await registries.versions(request.path_params["source"], server)
        return JSONResponse({**entry_json(found, full=True), "versions": [v.version for v in versions]})

    async def install(request: Request) -> Response:
        principal = principal_of(request)
        body = require_object(await read_json(request, max_body))
        unknown = set(body) - _INSTALL_FIELDS
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_INSTALL_FIELDS))}")
        server = body.get("server")
        if not isinstance(server, str) or not server:
            raise BadRequest("'server' (the registry entry's name) is required")
        for field in ("version", "name"):
            if body.get(field) is not None and not isinstance(body[field], str):
                raise BadRequest(f"{field!r} must be a string")
        prefer = body.get("prefer")
        if prefer not in (None, "remote", "package"):
            raise BadRequest("'prefer' must be 'remote' or 'package'")
        pin = body.pop("pin", "block")
        if pin not in ("off", "warn", "block"):
            raise BadRequest("'pin' must be one of: off, warn, block")
        require_pin(principal, pin, None, f"registry entry {server!r}")
        owned = await ownership(principal, body, team_exists)
        upstream, discovery = await registries.install(
            request.path_params["source"], server, upstream=body.get("name"), version=body.get("version"),
            values=_str_map(body.get("values"), "values"), prefer=prefer, overrides={**owned, "pin": pin},
            approve_as=(principal.user or principal.id) if is_admin(principal) else None,
        )
        snap = registries.gateway.snapshot
        installed = snap.upstreams.get(upstream.spec.name, upstream)
        shown = upstream_json(installed, snap.items, editor=can_edit(principal, installed.spec))
        tools = sorted(i.gateway_name for i in discovery.items if i.kind == "tool")
        return JSONResponse({**shown, "discovered": {"tools": tools}}, status_code=201)

    async def updates(request: Request) -> Response:
        """Installed upstreams whose registry entry has a newer cached version."""
        latest = await registries.latest_versions()
        principal = principal_of(request)
        items = []
        for upstream in registries.gateway.snapshot.upstreams.values():
            origin = upstream.spec.origin
            if origin is None or not can_see(principal, upstream.spec):
                continue
            newest = latest.get((origin.source, origin.server))
            if newest is not None and newest != origin.version:
                items.append({"upstream": upstream.spec.name, **origin.model_dump(), "latest": newest})
        return JSONResponse(paged(request, items))

    return [
        Route("/api/v1/registries", list_sources, methods=["GET"]),
        Route("/api/v1/registries/updates", updates, methods=["GET"]),
        Route("/api/v1/registries", add, methods=["POST"]),
        Route("/api/v1/registries/search", search, methods=["GET"]),
        Route("/api/v1/registries/{source}", get, methods=["GET"]),
        Route("/api/v1/registries/{source}", delete, methods=["DELETE"]),
        Route("/api/v1/registries/{source}/refresh", refresh, methods=["POST"]),
        Route("/api/v1/registries/{source}/servers", search, methods=["GET"]),
        Route("/api/v1/registries/{source}/entry", entry, methods=["GET"]),
        Route("/api/v1/registries/{source}/install", install, methods=["POST"]),
    ]
