"""REST facade: a virtual server's tools, prompts and resources over plain HTTP + JSON.

Not a side door: every call becomes the same `CallContext` the MCP endpoints build and runs the
same pipeline (authentication, policy, rate limits, bridge, dispatch). The edge already checked
the credential and the token's grants for this server (the facade's paths count as using it, see
`core.grants.used_server`); failures leave as problem+json through the edge's one function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from bastion import __version__
from bastion.core.errors import BadRequest, BastionError, Conflict, InvalidArguments, NotFound
from bastion.core.facade_doc import server_document
from bastion.core.ports import CallHooks
from bastion.core.snapshot import Snapshot
from bastion.pipeline.base import Next
from bastion.pipeline.context import CallContext, Principal
from bastion.pipeline.tracing import TRACE_KEYS, trace_headers
from bastion.web.mcp_fast import DisconnectWatch
from bastion.web.rest.common import parse_json
from bastion.web.rest.facade_calls import AsyncCalls
from bastion.web.rest.facade_page import docs_page
from bastion.web.rest.listing import only_paging
from bastion.web.scope import PRINCIPAL_SCOPE_KEY, credential_of

MayUse = Callable[[Principal, str], bool]
_LISTS = (
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
)
_MAX_LIST_PAGES = 100
_TRANSPORT_FIELDS = ("resultType", "ttlMs", "cacheScope", "_meta")
BASE = "/api/v1/servers/{name}"
TOOL_CALL = f"{BASE}/tools/{{tool}}"
PROMPT_CALL = f"{BASE}/prompts/{{prompt}}"
CALL_ROUTES = frozenset({TOOL_CALL, PROMPT_CALL})
"""The routes that use an item: the pipeline audits them as calls, as over MCP (not as changes)."""
_TRACE_KEYS = frozenset(k.encode() for k in TRACE_KEYS)
CLOSED = 499
"""The status logged for a caller that went away before its answer (nginx's convention)."""
ASYNC_HINT = "this tool asks its caller for input mid-call; call it with 'Prefer: respond-async' to answer"


def facade_context(scope: Scope, server: str, method: str, params: dict[str, Any]) -> CallContext:
    """The one place the facade makes a call's context: the credential exactly as the MCP edge
    passes it; the pipeline's authenticate stage decides who calls (one way in)."""
    client = scope.get("client")
    # The first of each trace header, as Starlette's Headers reads them.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"]) if k in _TRACE_KEYS}
    return CallContext(
        server=server,
        method=method,
        params=params,
        credential=credential_of(scope),
        check_arguments=method == "tools/call",
        address=str(client[0]) if client else None,
        trace_headers=trace_headers(headers),
    )


def tool_json(result: dict[str, Any]) -> dict[str, Any]:
    """An MCP tools/call result in the facade's shape."""
    content = result.get("content")
    structured = result.get("structuredContent")
    return {
        "content": content if isinstance(content, list) else [],
        "structured": structured if isinstance(structured, dict) else None,
        "is_error": bool(result.get("isError")),
    }


def plain_json(result: dict[str, Any]) -> dict[str, Any]:
    """A prompts/get or resources/read result without the protocol's per-hop fields."""
    return {k: v for k, v in result.items() if k not in _TRANSPORT_FIELDS}


def too_large(max_bytes: int) -> BadRequest:
    return BadRequest(f"request body is larger than {max_bytes} bytes")


async def body_of(request: Request, max_bytes: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    return bytes(body)


def optional_json(body: bytes) -> Any:
    """JSON from a body that may be empty (`{}`); BadRequest saying why it is not JSON."""
    return parse_json(body) if body.strip() else {}


def tool_arguments(body: bytes) -> dict[str, Any]:
    """A tool call's arguments from its body: a JSON object, or 422 as for a schema error."""
    arguments = optional_json(body)
    if not isinstance(arguments, dict):
        problem = [{"pointer": "", "message": "the arguments must be a JSON object"}]
        raise InvalidArguments("the body must be a JSON object of the tool's arguments", errors=problem)
    return arguments


class ClientGone(Exception):
    """The caller of a synchronous call went away: the call was cancelled, there is no one to answer."""


async def run_sync(pipeline: Next, ctx: CallContext, receive: Receive) -> dict[str, Any]:
    """Run a call for a caller who waits for the answer and cannot be asked anything meanwhile; a
    caller that disconnects cancels it (upstream too), as over MCP. Its body must have been read."""
    asked: list[str] = []

    async def cannot_ask(method: str, _params: dict[str, Any]) -> dict[str, Any]:
        asked.append(method)
        return {"code": -32603, "message": "the REST caller cannot answer questions during a synchronous call"}

    ctx.hooks = CallHooks(ask=cannot_ask)
    result: dict[str, Any] | None = None
    try:
        with anyio.CancelScope() as cancel:
            watch = DisconnectWatch(receive, cancel, None)
            try:
                result = await pipeline(ctx)
            finally:
                watch.stop()
    except BastionError:
        if asked:
            raise Conflict(ASYNC_HINT) from None
        raise
    if result is None:
        raise ClientGone
    if asked or result.get("resultType") == "input_required":
        raise Conflict(ASYNC_HINT)
    return result


class Facade:
    """The facade's routes for every virtual server, over one pipeline."""

    def __init__(
        self,
        pipeline: Next,
        snapshot: Callable[[], Snapshot],
        may_use: MayUse,
        max_body: int,
        base_url: str,
        calls: AsyncCalls | None = None,
    ) -> None:
        self.calls = calls
        self.pipeline = pipeline
        self.snapshot = snapshot
        self.may_use = may_use
        self.max_body = max_body
        self.base_url = base_url

    def visible(self, scope: Scope, name: str) -> str:
        """Server `name`, if this caller may see it; 404 otherwise, as on MCP."""
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        invisible = isinstance(principal, Principal) and not self.may_use(principal, name)
        if name not in self.snapshot().servers or invisible:
            raise NotFound(f"virtual server {name!r} does not exist")
        return name

    def server_of(self, request: Request) -> str:
        """The server named in the path, if this caller may see it."""
        return self.visible(request.scope, str(request.path_params["name"]))

    def tool_call(self, scope: Scope, server: str, tool: str, body: bytes) -> CallContext:
        """The context of a call of `tool` on a visible `server` with `body` as its arguments."""
        params = {"name": tool, "arguments": tool_arguments(body)}
        return facade_context(scope, server, "tools/call", params)

    async def answered(self, request: Request, ctx: CallContext, shape: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        """A synchronous call's answer; for a caller that went away (and cancelled it), none."""
        try:
            return JSONResponse(shape(await run_sync(self.pipeline, ctx, request.receive)))
        except ClientGone:
            return Response(status_code=CLOSED)

    async def call_tool(self, request: Request) -> Response:
        """The routed tool call: `Prefer: respond-async` calls (the hot path is `facade_fast`)."""
        server = self.server_of(request)
        body = await body_of(request, self.max_body)
        ctx = self.tool_call(request.scope, server, str(request.path_params["tool"]), body)
        if self.calls is not None and "respond-async" in request.headers.get("prefer", "").lower():
            return await self.calls.start(request, ctx, tool_json)
        return await self.answered(request, ctx, tool_json)

    async def get_prompt(self, request: Request) -> Response:
        server = self.server_of(request)
        arguments = optional_json(await body_of(request, self.max_body))
        if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
            raise BadRequest("the body must be a JSON object of the prompt's arguments, each a string")
        params = {"name": request.path_params["prompt"], "arguments": arguments}
        return await self.answered(request, facade_context(request.scope, server, "prompts/get", params), plain_json)

    async def read_resource(self, request: Request) -> Response:
        server = self.server_of(request)
        uri = request.query_params.get("uri")
        if not uri:
            raise BadRequest("say which resource to read: ?uri=")
        return await self.answered(request, facade_context(request.scope, server, "resources/read", {"uri": uri}), plain_json)

    async def listed(self, request: Request, server: str, method: str, field: str) -> list[dict[str, Any]]:
        """Every entry of a list the pipeline gives this caller, all pages."""
        entries: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        for _ in range(_MAX_LIST_PAGES):
            page = await self.pipeline(facade_context(request.scope, server, method, params))
            entries.extend(e for e in page.get(field, ()) if isinstance(e, dict))
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
            params = {"cursor": cursor}
        return entries

    async def document(self, request: Request, server: str) -> dict[str, Any]:
        """This caller's OpenAPI document for `server`, from the lists the pipeline gives them."""
        lists = {field: await self.listed(request, server, method, field) for method, field in _LISTS}
        view = self.snapshot().servers.get(server)
        return server_document(
            server,
            self.base_url,
            __version__,
            lists["tools"],
            lists["prompts"],
            lists["resources"],
            lists["resourceTemplates"],
            view.spec.description if view is not None else None,
        )

    async def list_tools(self, request: Request) -> Response:
        only_paging(request)  # every page of the server's list, gathered here
        server = self.server_of(request)
        return JSONResponse({"tools": await self.listed(request, server, "tools/list", "tools")})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(await self.document(request, self.server_of(request)))

    async def docs(self, request: Request) -> Response:
        server = self.server_of(request)
        page, policy = docs_page(await self.document(request, server))
        return HTMLResponse(page, headers={"content-security-policy": policy})

    def routes(self) -> list[Route]:
        base = BASE
        return [
            Route(f"{base}/tools", self.list_tools, methods=["GET"]),
            Route(TOOL_CALL, self.call_tool, methods=["POST"]),
            Route(PROMPT_CALL, self.get_prompt, methods=["POST"]),
            Route(f"{base}/resources/read", self.read_resource, methods=["GET"]),
            Route(f"{base}/openapi.json", self.openapi, methods=["GET"]),
            Route(f"{base}/docs", self.docs, methods=["GET"]),
            *self._call_routes(base),
        ]

    def _call_routes(self, base: str) -> list[Route]:
        if self.calls is None:
            return []
        return [
            Route(f"{base}/calls/{{call}}", self.calls.status, methods=["GET"]),
            Route(f"{base}/calls/{{call}}/events", self.calls.events, methods=["GET"]),
            Route(f"{base}/calls/{{call}}/answer", self.calls.answer, methods=["POST"]),
        ]
