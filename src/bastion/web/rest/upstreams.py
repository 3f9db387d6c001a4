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
from bastion.core.credential_moves import moved_secrets
from bastion.core.destinations import origin_of
from bastion.core.errors import BadRequest, Conflict, Forbidden
from bastion.core.identity import can_edit, can_see, is_admin
from bastion.core.launch import CommandRule, check_launch
from bastion.core.models import Discovery, Upstream, UpstreamSpec
from bastion.pipeline.context import Principal
from bastion.web.rest.access import (
    TeamExists,
    editable,
    ownership,
    principal_of,
    reach,
    require_pin,
    sees_upstream,
    visible_upstream,
)
from bastion.web.rest.common import (
    KIND_FIELDS,
    REDACTED,
    counts_by_upstream,
    read_json,
    require_object,
    upstream_json,
)
from bastion.web.rest.duplicates import pair_json
from bastion.web.rest.listing import paged

_EMPTY: dict[str, Any] = {"url": None, "headers": {}, "auth": None, "command": None, "args": [], "env": {}}
_PATCHABLE = {
    "transport", "url", "command", "args", "env", "headers", "auth", "isolation", "protocol", "enabled", "team", "visibility",
    "spec_url", "spec", "base_url", "include", "exclude", "pin", "destinations",
}
_SECRET_FIELDS = {"headers", "env", "auth"}
_LAUNCH_FIELDS = {"transport", "command", "args", "env"}
"""What decides which program a stdio upstream runs: a non-admin may change them only within the allow-list."""
_OWNERSHIP = ("team", "owner", "visibility")


def _keep_client_secret(body: dict[str, Any], old: UpstreamSpec) -> dict[str, Any]:
    """A PATCH of `auth` may leave out its write-only secret (an OAuth client secret, a query API key's
    value), or give it back as shown (`********`), to keep the stored one; a mask where nothing is
    stored is refused rather than stored as the secret."""
    auth = body.get("auth")
    if not isinstance(auth, dict):
        return body
    field = "value" if auth.get("type") == "api_key_query" else "client_secret"
    if field in auth and auth[field] != REDACTED:
        return body
    stored = getattr(old.auth, field, None) if old.auth is not None and auth.get("type") == old.auth.type else None
    if stored is not None:
        return body | {"auth": auth | {field: stored}}
    if auth.get(field) == REDACTED:
        raise BadRequest(f"auth {field!r}: {REDACTED} is how Bastion shows a stored value; give the value")
    return body


def _keep_masked(body: dict[str, Any], old: UpstreamSpec) -> dict[str, Any]:
    """A header or variable given back as shown (`********`) keeps its stored value: a GET edited and
    sent back as a PATCH must not replace the secrets with the mask."""
    for field, stored in (("headers", old.headers), ("env", old.env)):
        given = body.get(field)
        if not isinstance(given, dict) or REDACTED not in given.values():
            continue
        kept = {}
        for key, value in given.items():
            if value == REDACTED:
                if key not in stored:
                    raise BadRequest(f"{field} {key!r}: {REDACTED} is how Bastion shows a stored value; give the value")
                value = stored[key]
            kept[key] = value
        body = body | {field: kept}
    return body


def _discovered(discovery: Discovery | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {field: [] for field in KIND_FIELDS.values()}
    for item in discovery.items if discovery else ():
        out[KIND_FIELDS[item.kind]].append(item.gateway_name)
    return out


def upstream_routes(
    gateway: Gateway, max_body: int, team_exists: TeamExists | None = None, stdio_rules: tuple[CommandRule, ...] = (),
    duplicates: Duplicates | None = None,
) -> list[Route]:
    def show(name: str, principal: Principal) -> dict[str, Any]:
        upstream = gateway.upstream(name)
        snap = gateway.snapshot
        return upstream_json(upstream, snap.items, snap.clashes.get(name, ()), editor=can_edit(principal, upstream.spec))

    def editable_upstream(request: Request) -> Upstream:
        """The named upstream, 404 if the caller cannot see it, 403 if they may not change it."""
        principal = principal_of(request)
        upstream = visible_upstream(principal, gateway.snapshot.upstreams, request.path_params["name"])
        editable(principal, upstream.spec, f"upstream {upstream.spec.name!r}")
        return upstream

    async def list_upstreams(request: Request) -> Response:
        principal = principal_of(request)
        snap = gateway.snapshot
        limit = reach(principal, snap.servers)
        known = counts_by_upstream(snap.items)
        shown = [
            upstream_json(u, snap.items, snap.clashes.get(n, ()), known, editor=can_edit(principal, u.spec))
            for n, u in snap.upstreams.items()
            if sees_upstream(principal, u, limit)
        ]
        return JSONResponse(paged(request, shown))

    async def create(request: Request) -> Response:
        body = require_object(await read_json(request, max_body))
        principal = principal_of(request)
        owned = await ownership(principal, body, team_exists)
        spec = parse_upstream(body).model_copy(update=owned)
        require_pin(principal, spec.pin, None, f"upstream {spec.name!r}")
        if not is_admin(principal):
            check_launch(spec, stdio_rules)  # before anything runs
        # An admin registering an upstream approves what it offers now; anyone else's waits for one.
        approver = (principal.user or principal.id) if is_admin(principal) else None
        _, discovery = await gateway.register_upstream(spec, approve_as=approver)
        reply = {**show(spec.name, principal), "discovered": _discovered(discovery), "skipped": list(discovery.skipped)}
        if duplicates is not None:
            # Which of its tools already exist elsewhere (only where the caller can see them).
            seen = {n for n, u in gateway.snapshot.upstreams.items() if can_see(principal, u.spec)}
            upstream_of = {i.gateway_name: i.upstream for i in gateway.snapshot.items if i.kind == "tool"}
            reply["duplicates"] = [
                pair_json(p) for p in await duplicates.of_upstream(spec.name)
                if upstream_of.get(p.a) in seen and upstream_of.get(p.b) in seen
            ]
        return JSONResponse(reply, status_code=201)

    async def get(request: Request) -> Response:
        principal = principal_of(request)
        snap = gateway.snapshot
        visible_upstream(principal, snap.upstreams, request.path_params["name"], reach(principal, snap.servers))
        return JSONResponse(show(request.path_params["name"], principal))

    async def patch(request: Request) -> Response:
        name = request.path_params["name"]
        editable_upstream(request)
        principal = principal_of(request)
        body = require_object(await read_json(request, max_body))
        unknown = set(body) - _PATCHABLE
        if unknown:
            raise BadRequest(f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(sorted(_PATCHABLE))}")

        async def change(old: UpstreamSpec) -> UpstreamSpec:
            # What the body leaves out stays as stored now, not as it was when this request came in.
            editable(principal, old, f"upstream {name!r}")
            return await _patched(principal, name, dict(body), old)

        await gateway.change_upstream(name, change)
        return JSONResponse(show(name, principal))

    async def _patched(principal: Principal, name: str, body: dict[str, Any], old: UpstreamSpec) -> UpstreamSpec:
        if old.credentials_error is not None and not _SECRET_FIELDS & set(body):
            # Saving now would silently drop the credentials that no longer open.
            raise Conflict(
                f"the stored credentials of upstream {name!r} cannot be opened; give 'headers', 'env' or 'auth' "
                "anew to replace them"
            )
        sent = dict(body)
        destinations = _destinations(principal, name, body.pop("destinations", None))
        body = _keep_masked(_keep_client_secret(body, old), old)
        owned = await ownership(principal, body, team_exists, old)
        merged = old.model_dump(exclude={"credentials_error", "origin", "destinations", *_OWNERSHIP}) | {"args": list(old.args)} | body
        if "transport" in body and body["transport"] != old.transport:
            # The other transport's fields no longer apply unless given anew.
            stale = ("url", "headers", "auth") if body["transport"] == "stdio" else ("command", "args", "env")
            merged |= {key: _EMPTY[key] for key in stale if key not in body}
        try:
            spec = to_spec(UpstreamInput.model_validate(merged)).model_copy(
                update={**owned, "origin": old.origin, "destinations": destinations or ()}
            )
        except ValidationError as exc:
            raise BadRequest(describe_validation(exc)) from None
        require_pin(principal, spec.pin, old.pin, f"upstream {name!r}")
        if not is_admin(principal) and _LAUNCH_FIELDS & set(body):
            check_launch(spec, stdio_rules)  # before anything runs
        if not is_admin(principal) and (moved := moved_secrets(old, spec, sent, REDACTED)):
            # Write-only secrets must not be readable by repointing the upstream (an admin runs host commands anyway).
            raise Forbidden(
                f"this change would send the stored {', '.join(moved)} of upstream {name!r} somewhere new: "
                "give them anew, or ask an admin", missing="role:admin",
            )
        return spec

    def _destinations(principal: Principal, name: str, given: Any) -> tuple[str, ...] | None:
        """The origins an admin approves for the upstream's credentials (None: not given, so the
        gateway keeps those approved, or approves what a changed destination names)."""
        if given is None:
            return None
        if not is_admin(principal):  # approving an origin sends the stored secrets there
            raise Forbidden(f"only an admin may approve where upstream {name!r} sends its credentials", missing="role:admin")
        if not isinstance(given, list) or not given or not all(isinstance(o, str) and o for o in given):
            raise BadRequest("'destinations' must be a non-empty list of origins (scheme://host[:port])")
        return tuple(sorted({origin_of(o) for o in given}))

    async def delete(request: Request) -> Response:
        editable_upstream(request)
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        await gateway.delete_upstream(request.path_params["name"], force=force)
        return Response(status_code=204)

    async def refresh(request: Request) -> Response:
        name = editable_upstream(request).spec.name
        # A per-user OAuth upstream is discovered over the caller's own connection, when they have one.
        discovery = await gateway.refresh_upstream(name, user=principal_of(request).user)
        skipped = list(discovery.skipped) if discovery else []
        return JSONResponse({**show(name, principal_of(request)), "discovered": _discovered(discovery), "skipped": skipped})

    return [
        Route("/api/v1/upstreams", list_upstreams, methods=["GET"]),
        Route("/api/v1/upstreams", create, methods=["POST"]),
        Route("/api/v1/upstreams/{name}", get, methods=["GET"]),
        Route("/api/v1/upstreams/{name}", patch, methods=["PATCH"]),
        Route("/api/v1/upstreams/{name}", delete, methods=["DELETE"]),
        Route("/api/v1/upstreams/{name}/refresh", refresh, methods=["POST"]),
    ]
