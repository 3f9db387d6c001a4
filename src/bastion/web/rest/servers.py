"""REST: /api/v1/servers — compose virtual servers from catalog items and whole upstreams."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.gateway import Gateway
from bastion.control.upstream_input import describe_validation
from bastion.core.errors import BadRequest, NotFound
from bastion.core.models import PrefixMode, VirtualServerSpec
from bastion.core.policy import Policy
from bastion.core.ratelimit import RateLimits
from bastion.web.rest.common import read_json, require_object, server_json


class ServerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    tools: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    upstreams: list[str] = Field(default_factory=list)
    prefix: PrefixMode = "always"
    policy: Policy | None = None
    rate_limits: RateLimits | None = None


def _spec(body: dict[str, Any]) -> VirtualServerSpec:
    try:
        data = ServerInput.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe_validation(exc)) from None
    return VirtualServerSpec(
        name=data.name,
        description=data.description,
        tools=tuple(dict.fromkeys(data.tools)),
        prompts=tuple(dict.fromkeys(data.prompts)),
        resources=tuple(dict.fromkeys(data.resources)),
        upstreams=tuple(dict.fromkeys(data.upstreams)),
        prefix=data.prefix,
        policy=data.policy,
        rate_limits=data.rate_limits,
    )


def server_routes(gateway: Gateway, max_body: int, base_url: str) -> list[Route]:
    def show(name: str) -> dict[str, Any]:
        snap = gateway.snapshot
        view = snap.servers.get(name)
        if view is None:
            raise NotFound(f"virtual server {name!r} does not exist")
        return server_json(view.spec, view, base_url, snap.problems.get(name, ()))

    async def list_servers(request: Request) -> Response:
        return JSONResponse({"items": [show(name) for name in sorted(gateway.snapshot.servers)]})

    async def create(request: Request) -> Response:
        spec = _spec(require_object(await read_json(request, max_body)))
        await gateway.save_server(spec, create=True)
        return JSONResponse(show(spec.name), status_code=201)

    async def get(request: Request) -> Response:
        return JSONResponse(show(request.path_params["name"]))

    async def patch(request: Request) -> Response:
        name = request.path_params["name"]
        old = show(name)
        body = require_object(await read_json(request, max_body))
        if "name" in body and body["name"] != name:
            raise BadRequest("a virtual server cannot be renamed; create a new one")
        keys = ("description", "tools", "prompts", "resources", "upstreams", "prefix", "policy", "rate_limits")
        spec = _spec({"name": name, **{k: old[k] for k in keys}, **body})
        await gateway.save_server(spec, create=False)
        return JSONResponse(show(name))

    async def delete(request: Request) -> Response:
        await gateway.delete_server(request.path_params["name"])
        return Response(status_code=204)

    return [
        Route("/api/v1/servers", list_servers, methods=["GET"]),
        Route("/api/v1/servers", create, methods=["POST"]),
        Route("/api/v1/servers/{name}", get, methods=["GET"]),
        Route("/api/v1/servers/{name}", patch, methods=["PATCH"]),
        Route("/api/v1/servers/{name}", delete, methods=["DELETE"]),
    ]
