"""Attack class: an upstream's answer with a lone UTF-16 surrogate (`"\\ud800"` is valid JSON syntax;
UTF-8 cannot encode the str json.loads makes of it). An upstream is registered by an admin but runs
code Bastion does not control: its catalog text and results must not break what Bastion stores,
signs, logs or sends to other callers. The SDK's parser refuses such an answer from a 2025-11-25
upstream; Bastion's own parsers (the lean 2026-07-28 client, OpenAPI, A2A) refuse it the same way:
an upstream protocol error (502, a JSON-RPC error) that says why."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.mcp_fast import replayed
from tests.harness import TOKEN, Running, serve, serve_asgi, settings_for

pytestmark = pytest.mark.anyio

LONE = "evil \ud800 text"


def _json(value: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(value).encode(), media_type="application/json", headers=headers)  # the escape, as sent


def surrogate_upstream() -> Starlette:
    """A 2025-11-25 streamable HTTP server with a tool whose description, and whose results, hold a lone surrogate."""

    async def mcp(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405)
        message = json.loads(await request.body())
        method, rid = message.get("method"), message.get("id")
        if rid is None:
            return Response(status_code=202)
        if method == "server/discover":
            return _json({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no"}})
        if method == "initialize":
            result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "up", "version": "1"}}
            return _json({"jsonrpc": "2.0", "id": rid, "result": result}, {"mcp-session-id": "s1"})
        if method == "tools/list":
            tools = [
                {"name": "odd", "description": "odd", "inputSchema": {"type": "object"}},
                {"name": "plain", "description": "fine", "inputSchema": {"type": "object"}},
            ]
            return _json({"jsonrpc": "2.0", "id": rid, "result": {"tools": tools}})
        if method == "tools/call":
            text = LONE if message["params"]["name"] == "odd" else "ok"
            return _json({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}})
        return _json({"jsonrpc": "2.0", "id": rid, "result": {}})

    return Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Running, str]]:
    async with serve_asgi(surrogate_upstream()) as url, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        yield gw, f"{url}/mcp"


async def test_an_upstream_with_surrogates_in_its_catalog_and_results_breaks_nothing(gateway: tuple[Running, str]) -> None:
    gw, url = gateway
    registered = await gw.api.post("/api/v1/upstreams", json={"name": "up", "transport": "streamable-http", "url": url})
    assert registered.status_code < 500, registered.text
    tools = await gw.api.get("/api/v1/upstreams/up/tools")
    assert tools.status_code < 500, tools.text
    created = await gw.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["up"]})
    assert created.status_code < 500, created.text
    headers = {"authorization": f"Bearer {TOKEN}", "accept": "application/json, text/event-stream",
               "content-type": "application/json", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    async with httpx2.AsyncClient(timeout=30) as http:
        listed = await http.post(gw.mcp_url("vs"), headers=headers,
                                 content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}).encode())
        assert listed.status_code == 200, listed.text
        listed.content.decode()  # the answer is text
        for name in ("up__odd", "up__plain"):
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}, "_meta": meta}}
            answered = await http.post(gw.mcp_url("vs"), headers={**headers, "mcp-method": "tools/call", "mcp-name": name},
                                       content=json.dumps(call).encode())
            assert answered.status_code == 200, answered.text
            answered.content.decode()
    assert (await gw.api.get("/api/v1/audit")).status_code == 200
    assert (await gw.api.get("/readyz")).status_code == 200


# ---- the same answers from upstreams Bastion parses itself: a 2026-07-28 upstream (Bastion's lean
# client), a REST API described by OpenAPI, an A2A agent. Each is called over MCP in both eras and
# through the REST facade; the caller gets an error that says why (never a 500, never the surrogate),
# the call is audited, and the gateway, the upstream's other tools and other callers keep working.

BAD = "SURROGATE"


def _raw_reply(kind: str, rid: Any) -> Response:
    if kind == "error":
        return _json({"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": LONE}})
    result: dict[str, Any] = {"content": [{"type": "text", "text": LONE if kind != "structured" else "fine"}]}
    if kind == "structured":
        result["structuredContent"] = {"result": LONE}
    message = json.dumps({"jsonrpc": "2.0", "id": rid, "result": result})
    if kind == "sse":
        return Response(f"event: message\ndata: {message}\n\n".encode(), media_type="text/event-stream")
    return Response(message.encode(), media_type="application/json")


def modern_upstream(kind: str, reply: Callable[[str, Any], Response] | None = None) -> Any:
    """The fixture MCP server (stateless: 2026-07-28), whose `echo` of BAD answers with a lone
    surrogate (or as `reply(kind, id)` says)."""
    from tests.upstreams.fixture_server import build_server

    app = build_server().streamable_http_app(streamable_http_path="/mcp", stateless_http=True)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        body = b"".join(chunks)
        message = json.loads(body)
        params = message.get("params") or {}
        if message.get("method") == "tools/call" and (params.get("arguments") or {}).get("text") == BAD:
            return await (reply or _raw_reply)(kind, message.get("id"))(scope, receive, send)
        await app(scope, replayed(body, receive), send)

    return wrapped


def _clean(response: httpx2.Response) -> Any:
    """What the caller got: text, JSON, and no lone surrogate in it (as strict parsers, the SDK's among them, require)."""
    from bastion.core.surrogates import surrogate_in

    assert response.status_code in (200, 201, 502), response.text  # an upstream's fault is a 502, never a 500
    parsed = json.loads(response.content.decode())
    assert surrogate_in(parsed) is None, response.text
    assert "internal error" not in response.text.lower(), response.text
    return parsed


async def _mcp_call(gw: Running, name: str, arguments: dict[str, Any], progress: bool = False) -> Any:
    """A 2026-07-28 tools/call through the gateway, as a raw client (the answer, parsed; JSON or SSE),
    asking for progress if `progress`; whatever comes before the answer holds no surrogate either."""
    meta: dict[str, Any] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    if progress:
        meta["progressToken"] = "p1"
    headers = {"authorization": f"Bearer {TOKEN}", "accept": "application/json, text/event-stream",
               "content-type": "application/json", "mcp-protocol-version": "2026-07-28",
               "mcp-method": "tools/call", "mcp-name": name}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments, "_meta": meta}}
    async with httpx2.AsyncClient(timeout=30) as http:
        answered = await http.post(gw.mcp_url("vs"), headers=headers, content=json.dumps(call).encode())
    assert answered.status_code < 500, answered.text
    text = answered.content.decode()
    from bastion.core.surrogates import surrogate_in

    if answered.headers.get("content-type", "").startswith("text/event-stream"):
        *before, text = [line[5:] for line in text.splitlines() if line.startswith("data:")]
        assert all(surrogate_in(json.loads(data)) is None for data in before), before
    parsed = json.loads(text)
    assert surrogate_in(parsed) is None, text
    assert "internal error" not in text.lower(), text
    return parsed


async def _legacy_call(gw: Running, name: str, arguments: dict[str, Any], progress: list[str] | None = None) -> str:
    """A 2025-11-25 session's tools/call through the gateway with the SDK client: what it got, as text;
    with `progress`, it asks for progress and keeps each message there."""
    import anyio
    from mcp import MCPError

    async def on_progress(_progress: float, _total: float | None, message: str | None) -> None:
        assert progress is not None
        progress.append(message or "")

    with anyio.fail_after(30):
        async with gw.client("vs") as client:
            try:
                result = await client.call_tool(name, arguments, progress_callback=on_progress if progress is not None else None)
            except MCPError as exc:
                return f"error: {exc.message}"
    return json.dumps(result.model_dump(mode="json"))


async def _still_fine(gw: Running, bad: str, good: str, bad_args: dict[str, Any], good_args: dict[str, Any]) -> None:
    answers = [await _mcp_call(gw, bad, bad_args)]
    legacy = await _legacy_call(gw, bad, bad_args)
    assert "\ud800" not in legacy and "internal error" not in legacy.lower(), legacy
    answers.append(_clean(await gw.api.post(f"/api/v1/servers/vs/tools/{bad}", json=bad_args)))
    # Then the gateway, the audit chain and the upstream's other tools, for another caller too.
    assert "error" not in await _mcp_call(gw, good, good_args)
    assert not (await _legacy_call(gw, good, good_args)).startswith("error")
    assert (await gw.api.post(f"/api/v1/servers/vs/tools/{good}", json=good_args)).status_code == 200
    assert (await gw.api.get("/readyz")).status_code == 200
    audit = await gw.api.get("/api/v1/audit", params={"limit": "100"})
    assert audit.status_code == 200, audit.text
    assert [r for r in audit.json()["items"] if r["action"] == "tools/call" and r["target"] == bad], audit.text
    verdict = await gw.api.post("/api/v1/audit/verify")
    assert verdict.status_code == 200 and verdict.json()["ok"] is True, verdict.text
    for answer in [*map(json.dumps, answers), legacy]:
        assert "answered with text that is not valid Unicode (a lone surrogate \\" in answer and "ud800)" in answer, answer


@pytest.mark.parametrize("kind", ["text", "structured", "error", "sse"])
async def test_a_modern_upstream_answering_with_a_lone_surrogate_breaks_nothing(tmp_path: Path, kind: str) -> None:
    async with serve_asgi(modern_upstream(kind), lifespan="on") as url, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "up", "transport": "streamable-http", "url": f"{url}/mcp"})
        await gw.create_server({"name": "vs", "upstreams": ["up"]})
        await _still_fine(gw, "up__echo", "up__add", {"text": BAD}, {"a": 1, "b": 2})


def rest_api() -> Starlette:
    """A REST API described by OpenAPI whose `getBad` answers JSON with a lone surrogate."""

    async def document(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        schema = {"type": "object", "properties": {"value": {"type": "string"}}}
        ok = {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}
        return _json({
            "openapi": "3.1.0",
            "info": {"title": "odd", "version": "1"},
            "servers": [{"url": base}],
            "paths": {"/bad": {"get": {"operationId": "getBad", "responses": ok}},
                      "/good": {"get": {"operationId": "getGood", "responses": ok}}},
        })

    async def bad(request: Request) -> Response:
        return _json({"value": LONE})

    async def good(request: Request) -> Response:
        return _json({"value": "fine"})

    return Starlette(routes=[Route("/openapi.json", document), Route("/bad", bad), Route("/good", good)])


async def test_a_rest_api_answering_json_with_a_lone_surrogate_breaks_nothing(tmp_path: Path) -> None:
    async with serve_asgi(rest_api()) as base, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "api", "transport": "openapi", "spec_url": f"{base}/openapi.json"})
        await gw.create_server({"name": "vs", "upstreams": ["api"]})
        await _still_fine(gw, "api__getBad", "api__getGood", {}, {})


def a2a_agent() -> Starlette:
    """An A2A agent whose `bad` skill replies with a lone surrogate."""

    async def card(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return _json({
            "name": "odd", "version": "1", "capabilities": {},
            "supportedInterfaces": [{"protocolBinding": "JSONRPC", "url": f"{base}/rpc", "protocolVersion": "1.0"}],
            "skills": [{"id": "bad", "name": "bad"}, {"id": "good", "name": "good"}],
        })

    async def rpc(request: Request) -> Response:
        message = json.loads(await request.body())
        skill = message["params"]["message"]["metadata"]["skillId"]
        text = LONE if skill == "bad" else "fine"
        return _json({"jsonrpc": "2.0", "id": message["id"], "result": {"message": {"role": "ROLE_AGENT", "parts": [{"text": text}]}}})

    return Starlette(routes=[Route("/.well-known/agent-card.json", card), Route("/rpc", rpc, methods=["POST"])])


async def test_an_a2a_agent_replying_with_a_lone_surrogate_breaks_nothing(tmp_path: Path) -> None:
    async with serve_asgi(a2a_agent()) as base, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "agent", "transport": "a2a", "url": f"{base}/.well-known/agent-card.json"})
        await gw.create_server({"name": "vs", "upstreams": ["agent"]})
        await _still_fine(gw, "agent__bad", "agent__good", {"message": "hi"}, {"message": "hi"})


def streaming_a2a_agent(where: str, methods: list[str]) -> Starlette:
    """An A2A agent that streams (SendStreamingMessage): a task, a status update (which Bastion relays
    as progress), the artifact (the result), completed. For the `bad` skill the status update's text
    (`where` "status") or the artifact's holds a lone surrogate, escaped; `methods` records what came."""

    async def card(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return _json({
            "name": "odd", "version": "1", "capabilities": {"streaming": True},
            "supportedInterfaces": [{"protocolBinding": "JSONRPC", "url": f"{base}/rpc", "protocolVersion": "1.0"}],
            "skills": [{"id": "bad", "name": "bad"}, {"id": "good", "name": "good"}],
        })

    async def rpc(request: Request) -> Response:
        message = json.loads(await request.body())
        methods.append(message["method"])
        bad = message["params"]["message"]["metadata"]["skillId"] == "bad"
        ids = {"taskId": "t1", "contextId": "c1"}
        said = {"role": "ROLE_AGENT", "parts": [{"text": LONE if bad and where == "status" else "working on it"}]}
        results = [
            {"task": {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_SUBMITTED"}}},
            {"statusUpdate": {**ids, "status": {"state": "TASK_STATE_WORKING", "message": said}}},
            {"artifactUpdate": {**ids, "artifact": {"artifactId": "a1", "parts": [{"text": LONE if bad and where == "artifact" else "fine"}]}}},
            {"statusUpdate": {**ids, "status": {"state": "TASK_STATE_COMPLETED"}}},
        ]
        events = "".join(f"data: {json.dumps({'jsonrpc': '2.0', 'id': message['id'], 'result': r})}\n\n" for r in results)
        return Response(events.encode(), media_type="text/event-stream")

    return Starlette(routes=[Route("/.well-known/agent-card.json", card), Route("/rpc", rpc, methods=["POST"])])


async def _async_facade_call(gw: Running, name: str, arguments: dict[str, Any]) -> tuple[str, Any]:
    """A `Prefer: respond-async` facade call (which relays progress, so Bastion follows the agent's
    stream), followed on its events URL to its end: the last event's name and data."""
    from bastion.core.surrogates import surrogate_in
    from tests.e2e.test_facade_async import ASYNC, events

    started = await gw.api.post(f"/api/v1/servers/vs/tools/{name}", json=arguments, headers=ASYNC)
    assert started.status_code == 202, started.text
    async for last in events(gw.api, started.json()["events_url"], until="error"):
        assert surrogate_in(last[1]) is None and "internal error" not in json.dumps(last).lower(), last
    return last


@pytest.mark.parametrize("where", ["status", "artifact"])
async def test_an_a2a_agent_streaming_a_lone_surrogate_breaks_nothing(tmp_path: Path, where: str) -> None:
    """A caller that asks for progress (a progress token over MCP, an async facade call) has Bastion
    follow the agent's stream: an event with a lone surrogate ends the call with the upstream protocol
    error, whether it would have been relayed as progress or become the result."""
    import anyio

    methods: list[str] = []
    async with serve_asgi(streaming_a2a_agent(where, methods)) as base, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "agent", "transport": "a2a", "url": f"{base}/.well-known/agent-card.json"})
        await gw.create_server({"name": "vs", "upstreams": ["agent"]})
        said: list[str] = []
        with anyio.fail_after(60):  # a refused stream ends the call, it does not hang it
            modern = await _mcp_call(gw, "agent__bad", {"message": "hi"}, progress=True)
            legacy = await _legacy_call(gw, "agent__bad", {"message": "hi"}, said)
            ended, outcome = await _async_facade_call(gw, "agent__bad", {"message": "hi"})
        assert methods == ["SendStreamingMessage"] * 3, methods
        assert modern["error"]["data"]["type"] == "UpstreamProtocolError", modern
        assert ended == "error" and outcome["state"] == "failed" and outcome["error"]["status"] == 502, outcome
        assert said == ([] if where == "status" else ["working on it"]), said  # what came before it is relayed
        for answer in (modern["error"]["message"], legacy, outcome["error"]["detail"]):
            assert "agent 'agent' answered with text that is not valid Unicode (a lone surrogate \\ud800)" in answer, answer
        # Then the gateway, the audit chain and the agent's other skill, streamed too.
        with anyio.fail_after(60):
            assert (await _mcp_call(gw, "agent__good", {"message": "hi"}, progress=True))["result"]["content"][0]["text"] == "fine"
            said.clear()
            assert json.loads(await _legacy_call(gw, "agent__good", {"message": "hi"}, said))["content"][0]["text"] == "fine"
            ended, outcome = await _async_facade_call(gw, "agent__good", {"message": "hi"})
        assert ended == "result" and outcome["result"]["content"][0]["text"] == "fine", outcome
        assert said == ["working on it", "TASK_STATE_COMPLETED"], said
        assert methods == ["SendStreamingMessage"] * 6, methods
        assert (await gw.api.get("/readyz")).status_code == 200
        audit = await gw.api.get("/api/v1/audit", params={"limit": "100"})
        assert audit.status_code == 200, audit.text
        assert len([r for r in audit.json()["items"] if r["action"] == "tools/call" and r["target"] == "agent__bad"]) == 3, audit.text
        verdict = await gw.api.post("/api/v1/audit/verify")
        assert verdict.status_code == 200 and verdict.json()["ok"] is True, verdict.text


@pytest.mark.parametrize("transport", ["openapi", "a2a"])
async def test_a_catalog_with_a_lone_surrogate_is_refused_at_registration(tmp_path: Path, transport: str) -> None:
    """A REST API's document or an agent's card holding one: the upstream is not registered (a 502
    that says why, as the SDK refuses such a catalog from an MCP server), and nothing is stored."""

    async def document(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        if transport == "a2a":
            return _json({"name": "odd", "capabilities": {}, "skills": [{"id": "bad", "description": LONE}],
                          "supportedInterfaces": [{"protocolBinding": "JSONRPC", "url": f"{base}/rpc"}]})
        ok = {"200": {"description": "ok"}}
        return _json({"openapi": "3.1.0", "info": {"title": "odd", "version": "1"}, "servers": [{"url": base}],
                      "paths": {"/bad": {"get": {"operationId": "getBad", "description": LONE, "responses": ok}}}})

    app = Starlette(routes=[Route("/doc", document)])
    async with serve_asgi(app) as base, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        key = "spec_url" if transport == "openapi" else "url"
        registered = await gw.api.post("/api/v1/upstreams", json={"name": "up", "transport": transport, key: f"{base}/doc"})
        _clean(registered)
        assert registered.status_code == 502, registered.text
        assert "holds text that is not valid Unicode (a lone surrogate \\ud800)" in registered.json()["detail"]
        assert (await gw.api.get("/api/v1/upstreams/up")).status_code == 404
        assert (await gw.api.get("/readyz")).status_code == 200
