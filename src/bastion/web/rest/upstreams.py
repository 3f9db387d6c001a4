"""REST: /api/v1/upstreams — register, inspect, change, refresh and remove upstream servers."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.duplicates import Duplicates
from bastion.control.gateway import Gateway
from bastion.control.upstream_input import UpstreamInput, describe_validation, parse_upstream, to_spec
from bastion.core.errors import BadRequest, Conflict
from bastion.core.identity import can_see, is_admin
from bastion.core.models import Discovery, Upstream, UpstreamSpec
from bastion.web.rest.access import TeamExists, editable, ownership, principal_of, visible_upstream
from bastion.web.rest.common import KIND_FIELDS, read_json, require_object, upstream_json
from bastion.web.rest.duplicates import pair_json

_EMPTY: dict[str, Any] = {"url": None, "headers": {}, "auth": None, "command": None, "args": [], "env": {}}
_PATCHABLE = {
    "transport", "url", "command", "args", "env", "headers", "auth", "isolation", "enabled", "team", "visibility", "pin"
}
_SECRET_FIELDS = {"headers", "env", "auth"}
_OWNERSHIP = ("team", "owner", "visibility")


def _keep_client_secret(body: dict[str, Any], old: UpstreamSpec) -> dict[str, Any]:
    """A PATCH of OAuth settings may leave out the (write-only) client secret to keep the stored one."""
    auth = body.get("auth")
    if isinstance(auth, dict) and "client_secret" not in auth:
        if old.auth is not None and auth.get("type") == old.auth.type and old.auth.client_secret is not None:
            return body | {"auth": auth | {"client_secret": old.auth.client_secret}}
    return body


def _discovered(discovery: Discovery | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {field: [] for field in KIND_FIELDS.values()}
    for item in discovery.items if discovery else ():
        out[KIND_FIELDS[item.kind]].append(item.gateway_name)
    return out


def upstream_routes(
    gateway: Gateway, max_body: int, team_exists: TeamExists | None = None, duplicates: Duplicates | None = None
) -> list[Route]:
    def show(name: str) -> dict[str, Any]:
        snap = gateway.snapshot
        return upstream_json(gateway.upstream(name), snap.items)

    def editable_upstream(request: Request) -> Upstream:
        """The named upstream, 404 if the caller cannot see it, 403 if they may not change it."""
        principal = principal_of(request)
        upstream = visible_upstream(principal, gateway.snapshot.upstreams, request.path_params["name"])
        editable(principal, upstream.spec, f"upstream {upstream.spec.name!r}")
        return upstream

    async def list_upstreams(request: Request) -> Response:
        principal = principal_of(request)
        snap = gateway.snapshot
        shown = [upstream_json(u, snap.items) for u in snap.upstreams.values() if can_see(principal, u.spec)]
        return JSONResponse({"items": shown})

    async def create(request: Request) -> Response:
        body = require_object(await read_json(request, max_body))
        principal = principal_of(request)
        owned = await ownership(principal, body, team_exists)
        spec = parse_upstream(body).model_copy(update=owned)
        # An admin registering an upstream approves what it offers now; anyone else's waits for one.
        approver = (principal.user or principal.id) if is_admin(principal) else None
        _, discovery = await gateway.register_upstream(spec, approve_as=approver)
        reply = {**show(spec.name), "discovered": _discovered(discovery)}
        if duplicates is not None:
            # Which of its tools already exist elsewhere (only where the caller can see them).
            seen = {n for n, u in gateway.snapshot.upstreams.items() if can_see(principal, u.spec)}
            upstream_of = {i.gateway_name: i.upstream for i in gateway.snapshot.items if i.kind == "tool"}
            reply["duplicates"] = [
                pair_json(p) for p in duplicates.of_upstream(spec.name)
                if upstream_of.get(p.a) in seen and upstream_of.get(p.b) in seen
            ]
        return JSONResponse(reply, status_code=201)

    async def get(request: Request) -> Response:
        visible_upstream(principal_of(request), gateway.snapshot.upstreams, request.path_params["name"])
        return JSONResponse(show(request.path_params["name"]))

    async def patch(request: Request) -> Response:
        name = request.path_params["name"]
        old = editable_upstream(request).spec
        body = require_object(await read_json(request, max_body))
        unknown = set(body) - _PATCHABLE
        if unknown:
            raise BadRequest(f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(sorted(_PATCHABLE))}")
        if old.credentials_error is not None and not _SECRET_FIELDS & set(body):
            # Saving now would silently drop the credentials that no longer open.
            raise Conflict(
                f"the stored credentials of upstream {name!r} cannot be opened; give 'headers', 'env' or 'auth' "
                "anew to replace them"
            )
        body = _keep_client_secret(body, old)
        owned = await ownership(principal_of(request), body, team_exists, old)
        merged = old.model_dump(exclude={"credentials_error", "origin", *_OWNERSHIP}) | {"args": list(old.args)} | body
        if "transport" in body and body["transport"] != old.transport:
            # The other transport's fields no longer apply unless given anew.
            stale = ("url", "headers", "auth") if body["transport"] == "stdio" else ("command", "args", "env")
            merged |= {key: _EMPTY[key] for key in stale if key not in body}
        try:
            spec = to_spec(UpstreamInput.model_validate(merged)).model_copy(update={**owned, "origin": old.origin})
        except ValidationError as exc:
            raise BadRequest(describe_validation(exc)) from None
        await gateway.update_upstream(spec)
        return JSONResponse(show(name))

    async def delete(request: Request) -> Response:
        editable_upstream(request)
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        await gateway.delete_upstream(request.path_params["name"], force=force)
        return Response(status_code=204)

    async def refresh(request: Request) -> Response:
        name = editable_upstream(request).spec.name
        # A per-user OAuth upstream is discovered over the caller's own connection, when they have one.
        discovery = await gateway.refresh_upstream(name, user=principal_of(request).user)
        return JSONResponse({**show(name), "discovered": _discovered(discovery)})

    return [
        Route("/api/v1/upstreams", list_upstreams, methods=["GET"]),
        Route("/api/v1/upstreams", create, methods=["POST"]),
        Route("/api/v1/upstreams/{name}", get, methods=["GET"]),
        Route("/api/v1/upstreams/{name}", patch, methods=["PATCH"]),
        Route("/api/v1/upstreams/{name}", delete, methods=["DELETE"]),
        Route("/api/v1/upstreams/{name}/refresh", refresh, methods=["POST"]),
    ]
