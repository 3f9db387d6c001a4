"""REST: /api/v1/servers — compose virtual servers from catalog items and whole upstreams."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.gateway import Gateway
from bastion.control.policy_subjects import PolicySubjects
from bastion.control.upstream_input import describe_validation
from bastion.core.compose import ServerView
from bastion.core.errors import BadRequest, NotFound
from bastion.core.identity import can_edit, can_see
from bastion.core.models import PrefixMode, VirtualServerSpec
from bastion.core.policy import Policy
from bastion.core.ratelimit import RateLimits
from bastion.core.transforms import ToolTransform
from bastion.pipeline.context import Principal
from bastion.web.rest.access import TeamExists, editable, ownership, principal_of, reach
from bastion.web.rest.common import read_json, require_object, server_json
from bastion.web.rest.listing import paged


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
    transforms: dict[str, ToolTransform] = Field(default_factory=dict)
    discovery: Literal["list", "search"] = "list"


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
        transforms=data.transforms,
        discovery=data.discovery,
    )


def _check_sources(gateway: Gateway, principal: Principal, spec: VirtualServerSpec) -> None:
    """A server may only draw on upstreams its author can see; others are answered as unknown."""
    upstreams = gateway.snapshot.upstreams
    of_item = {i.gateway_name: i.upstream for i in gateway.snapshot.items}
    named = [*spec.upstreams, *(of_item.get(n, "") for n in (*spec.tools, *spec.prompts, *spec.resources))]
    for name in named:
        upstream = upstreams.get(name)
        if upstream is not None and not can_see(principal, upstream.spec):
            raise BadRequest("the server names an upstream or item that does not exist")


def server_routes(
    gateway: Gateway,
    max_body: int,
    base_url: str,
    team_exists: TeamExists | None = None,
    subjects: PolicySubjects | None = None,
) -> list[Route]:
    def visible(request: Request, name: str) -> ServerView:
        principal, views = principal_of(request), gateway.snapshot.servers
        view = views.get(name)
        limit = reach(principal, views)
        if view is None or not can_see(principal, view.spec) or (limit is not None and name not in limit.servers):
            raise NotFound(f"virtual server {name!r} does not exist")
        return view

    def show(name: str, emails: dict[str, str], spec: VirtualServerSpec | None = None) -> dict[str, Any]:
        """The server as served now, or as `spec` says it is stored."""
        snap = gateway.snapshot
        view = snap.servers.get(name)
        if view is None:
            raise NotFound(f"virtual server {name!r} does not exist")
        spec = spec or view.spec
        if spec.policy is not None and subjects is not None:
            # Stored by user id (stable), shown by email (readable); a PATCH may send it back as shown.
            spec = spec.model_copy(update={"policy": subjects.shown(spec.policy, emails)})
        return server_json(spec, view, base_url, snap.problems.get(name, ()))

    async def emails(principal: Principal) -> dict[str, str]:
        """The emails `principal` may see (of their teams' members; all for an admin): any other
        user a policy names is shown by id."""
        return await subjects.emails(principal) if subjects is not None else {}

    def readable(principal: Principal, name: str, known: dict[str, str]) -> dict[str, str]:
        """The emails `principal` may read in the server's policy: all they may see for whoever
        may edit it (a PATCH sends the policy back as shown); otherwise only their own, other users'
        rules naming them by id (a server's users need not learn who else, of any team, it names)."""
        view = gateway.snapshot.servers.get(name)
        if view is None or can_edit(principal, view.spec):
            return known
        return {principal.user: known[principal.user]} if principal.user in known else {}

    async def checked(
        principal: Principal, spec: VirtualServerSpec, kept: VirtualServerSpec | None = None
    ) -> VirtualServerSpec:
        """Policy subjects resolved to ids; 400 naming any that does not exist, or that `principal`
        may not see (alike), unless the stored policy (`kept`) already names it."""
        if subjects is None:
            return spec
        policy = await subjects.resolve(spec.policy, actor=principal, kept=kept.policy if kept is not None else None)
        return spec.model_copy(update={"policy": policy})

    async def list_servers(request: Request) -> Response:
        principal = principal_of(request)
        limit = reach(principal, gateway.snapshot.servers)
        names = [
            n
            for n, v in sorted(gateway.snapshot.servers.items())
            if can_see(principal, v.spec) and (limit is None or n in limit.servers)
        ]
        known = await emails(principal)
        return JSONResponse(paged(request, [show(name, readable(principal, name, known)) for name in names]))

    async def create(request: Request) -> Response:
        principal = principal_of(request)
        body = require_object(await read_json(request, max_body))
        owned = await ownership(principal, body, team_exists)
        spec = await checked(principal, _spec(body).model_copy(update=owned))
        _check_sources(gateway, principal, spec)
        await gateway.save_server(spec, create=True)
        return JSONResponse(show(spec.name, await emails(principal)), status_code=201)

    async def get(request: Request) -> Response:
        name = visible(request, request.path_params["name"]).spec.name
        principal = principal_of(request)
        return JSONResponse(show(name, readable(principal, name, await emails(principal))))

    async def patch(request: Request) -> Response:
        principal = principal_of(request)
        name = request.path_params["name"]
        editable(principal, visible(request, name).spec, f"virtual server {name!r}")
        body = require_object(await read_json(request, max_body))
        if "name" in body and body["name"] != name:
            raise BadRequest("a virtual server cannot be renamed; create a new one")
        known = await emails(principal)

        async def change(current: VirtualServerSpec) -> VirtualServerSpec:
            # What the body leaves out stays as stored now, not as it was when this request came in.
            editable(principal, current, f"virtual server {name!r}")
            given = dict(body)
            owned = await ownership(principal, given, team_exists, current)
            old = show(name, known, current)
            keys = ("description", "tools", "prompts", "resources", "upstreams", "prefix", "policy", "rate_limits", "transforms", "discovery")
            merged = _spec({"name": name, **{k: old[k] for k in keys}, **given}).model_copy(update=owned)
            spec = await checked(principal, merged, current)
            _check_sources(gateway, principal, spec)
            return spec

        await gateway.change_server(name, change)
        return JSONResponse(show(name, await emails(principal)))

    async def delete(request: Request) -> Response:
        name = request.path_params["name"]
        editable(principal_of(request), visible(request, name).spec, f"virtual server {name!r}")
        await gateway.delete_server(name)
        return Response(status_code=204)

    return [
        Route("/api/v1/servers", list_servers, methods=["GET"]),
        Route("/api/v1/servers", create, methods=["POST"]),
        Route("/api/v1/servers/{name}", get, methods=["GET"]),
        Route("/api/v1/servers/{name}", patch, methods=["PATCH"]),
        Route("/api/v1/servers/{name}", delete, methods=["DELETE"]),
    ]
