"""REST: /api/v1/upstreams — register, inspect, change, refresh and remove upstream servers."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.gateway import Gateway
from bastion.control.upstream_input import UpstreamInput, describe_validation, parse_upstream, to_spec
from bastion.core.errors import BadRequest, Conflict
from bastion.core.models import Discovery, UpstreamSpec
from bastion.web.rest.common import KIND_FIELDS, read_json, require_object, upstream_json

_EMPTY: dict[str, Any] = {"url": None, "headers": {}, "auth": None, "command": None, "args": [], "env": {}}
_PATCHABLE = {"transport", "url", "command", "args", "env", "headers", "auth", "isolation", "enabled"}
_SECRET_FIELDS = {"headers", "env", "auth"}


def _keep_client_secret(body: dict[str, Any], old: UpstreamSpec) -> dict[str, Any]:
    """A PATCH of OAuth settings may leave out the (write-only) client secret to keep the stored one."""
    auth = body.get("auth")
    if isinstance(auth, dict) and auth.get("type") == "oauth_client_credentials" and "client_secret" not in auth:
        if old.auth is not None:
            return body | {"auth": auth | {"client_secret": old.auth.client_secret}}
    return body


def _discovered(discovery: Discovery | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {field: [] for field in KIND_FIELDS.values()}
    for item in discovery.items if discovery else ():
        out[KIND_FIELDS[item.kind]].append(item.gateway_name)
    return out


def upstream_routes(gateway: Gateway, max_body: int) -> list[Route]:
    def show(name: str) -> dict[str, Any]:
        snap = gateway.snapshot
        return upstream_json(gateway._upstream(name), snap.items)  # noqa: SLF001

    async def list_upstreams(request: Request) -> Response:
        snap = gateway.snapshot
        return JSONResponse({"items": [upstream_json(u, snap.items) for u in snap.upstreams.values()]})

    async def create(request: Request) -> Response:
        spec = parse_upstream(require_object(await read_json(request, max_body)))
        _, discovery = await gateway.register_upstream(spec)
        return JSONResponse({**show(spec.name), "discovered": _discovered(discovery)}, status_code=201)

    async def get(request: Request) -> Response:
        return JSONResponse(show(request.path_params["name"]))

    async def patch(request: Request) -> Response:
        name = request.path_params["name"]
        body = require_object(await read_json(request, max_body))
        unknown = set(body) - _PATCHABLE
        if unknown:
            raise BadRequest(f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(sorted(_PATCHABLE))}")
        old = gateway._upstream(name).spec  # noqa: SLF001
        if old.credentials_error is not None and not _SECRET_FIELDS & set(body):
            # Saving now would silently drop the credentials that no longer open.
            raise Conflict(
                f"the stored credentials of upstream {name!r} cannot be opened; give 'headers', 'env' or 'auth' "
                "anew to replace them"
            )
        body = _keep_client_secret(body, old)
        merged = old.model_dump(exclude={"credentials_error"}) | {"args": list(old.args)} | body
        if "transport" in body and body["transport"] != old.transport:
            # The other transport's fields no longer apply unless given anew.
            stale = ("url", "headers", "auth") if body["transport"] == "stdio" else ("command", "args", "env")
            merged |= {key: _EMPTY[key] for key in stale if key not in body}
        try:
            spec = to_spec(UpstreamInput.model_validate(merged))
        except ValidationError as exc:
            raise BadRequest(describe_validation(exc)) from None
        await gateway.update_upstream(spec)
        return JSONResponse(show(name))

    async def delete(request: Request) -> Response:
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        await gateway.delete_upstream(request.path_params["name"], force=force)
        return Response(status_code=204)

    async def refresh(request: Request) -> Response:
        name = request.path_params["name"]
        discovery = await gateway.refresh_upstream(name)
        return JSONResponse({**show(name), "discovered": _discovered(discovery)})

    return [
        Route("/api/v1/upstreams", list_upstreams, methods=["GET"]),
        Route("/api/v1/upstreams", create, methods=["POST"]),
        Route("/api/v1/upstreams/{name}", get, methods=["GET"]),
        Route("/api/v1/upstreams/{name}", patch, methods=["PATCH"]),
        Route("/api/v1/upstreams/{name}", delete, methods=["DELETE"]),
        Route("/api/v1/upstreams/{name}/refresh", refresh, methods=["POST"]),
    ]
