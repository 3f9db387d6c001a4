"""The REST facade: a virtual server's tools, prompts and resources over plain HTTP, through the
same pipeline as its MCP endpoint (grants, visibility, policy, rate limits all apply)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import MCPError
from openapi_spec_validator import validate

from bastion.core.errors import Forbidden, InvalidArguments, NotFound, RateLimited, Unauthenticated, UnknownTool
from tests.e2e.test_policy import setup as policy_setup
from tests.e2e.test_token_scopes import create_token
from tests.harness import HttpUpstream, Running, http_fixture, serve, settings_for, stdio_fixture
from tests.identity import make_user, signed_in
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio


def facade(server: str, tail: str) -> str:
    return f"/api/v1/servers/{server}/{tail}"


async def as_token(gateway: Running, secret: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


@pytest.fixture(scope="module")
def http_upstream() -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http") as upstream:
        yield upstream


@pytest.fixture(params=["stdio", "streamable-http"])
async def both_eras(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Running, str]]:
    """Bastion with the fixture upstream `fx` behind server `vs`: over stdio (2025-11-25) and over
    streamable HTTP (2026-07-28); yields the gateway and the protocol version the upstream speaks."""
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        if request.param == "stdio":
            body = stdio_fixture("fx")
        else:
            body = request.getfixturevalue("http_upstream").body("fx")
        registered = await gateway.register(body)
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        yield gateway, str(registered["protocol_version"])


async def test_tools_prompts_and_resources_answer_over_rest_for_both_eras(both_eras: tuple[Running, str]) -> None:
    gateway, version = both_eras
    api = gateway.api
    echoed = await api.post(facade("vs", "tools/fx__echo"), json={"text": "hello"})
    assert echoed.status_code == 200, echoed.text
    assert echoed.json()["content"] == [{"type": "text", "text": "hello"}]
    assert echoed.json()["is_error"] is False
    added = (await api.post(facade("vs", "tools/fx__add"), json={"a": 2, "b": 3})).json()
    assert added["structured"] == {"result": 5} and added["content"][0]["text"] == "5"

    failed = await api.post(facade("vs", "tools/fx__fail"), json={"message": "boom"})
    assert failed.status_code == 200 and failed.json()["is_error"] is True
    assert "boom" in failed.json()["content"][0]["text"]

    prompt = await api.post(facade("vs", "prompts/fx__greet"), json={"name": "ada"})
    assert prompt.status_code == 200, prompt.text
    assert "ada" in prompt.json()["messages"][0]["content"]["text"]
    static = await api.get(facade("vs", "resources/read"), params={"uri": "fixture://static"})
    assert static.json()["contents"][0]["text"] == "static content"
    templated = await api.get(facade("vs", "resources/read"), params={"uri": "fixture://items/7"})
    assert "7" in templated.json()["contents"][0]["text"]
    assert version in ("2025-11-25", "2026-07-28")


async def test_arguments_are_checked_against_the_schema_with_a_pointer_to_each_bad_field(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    bad = await gateway.api.post(facade("vs", "tools/fx__add"), json={"a": "two"})
    body = assert_problem(bad, 422)
    assert body["title"] == InvalidArguments.title
    assert {"pointer": "/a", "message": "'two' is not of type 'integer'"} in body["errors"]
    assert {"pointer": "/b", "message": "'b' is a required property"} in body["errors"]
    not_object = assert_problem(await gateway.api.post(facade("vs", "tools/fx__add"), json=[1, 2]), 422)
    assert not_object["errors"] == [{"pointer": "", "message": "the arguments must be a JSON object"}]
    assert_problem(await gateway.api.post(facade("vs", "tools/fx__add"), content=b"{not json"), 400)
    unknown = assert_problem(await gateway.api.post(facade("vs", "tools/fx__nope"), json={}), 404)
    assert unknown["title"] == UnknownTool.title
    assert_problem(await gateway.api.get(facade("vs", "resources/read")), 400)
    assert_problem(await gateway.api.get(facade("nope", "tools")), 404)


async def test_a_tool_call_answers_as_the_routed_api_does_at_its_edges(tmp_path: Path) -> None:
    """Tool calls have their own fast path; what it does not serve reaches the routed API unchanged."""
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", max_body_bytes=64 * 1024)) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
        api = gateway.api
        plain = await api.post(facade("vs", "tools/fx__echo"), content=b'{"text": "h\u00e9"}')
        assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
        assert plain.json() == {"content": [{"type": "text", "text": "h\u00e9"}], "structured": {"result": "h\u00e9"}, "is_error": False}
        assert "h\u00e9".encode() in plain.content  # UTF-8, as JSONResponse writes it
        assert plain.headers["x-content-type-options"] == "nosniff" and plain.headers["cache-control"] == "no-store"
        empty = assert_problem(await api.post(facade("vs", "tools/fx__echo"), content=b" "), 422)  # as {}
        assert empty["errors"] == [{"pointer": "/text", "message": "'text' is a required property"}]
        too_large = assert_problem(await api.post(facade("vs", "tools/fx__echo"), content=b" " * (64 * 1024 + 1)), 400)
        assert "larger than" in too_large["detail"]
        deep = assert_problem(await api.post(facade("vs", "tools/fx__echo"), content=b"[" * 100 + b"]" * 100), 400)
        assert "nests deeper" in deep["detail"]
        wrong_method = await api.get(facade("vs", "tools/fx__echo"))
        assert wrong_method.status_code == 405 and wrong_method.json()["status"] == 405
        assert wrong_method.headers["content-type"] == "application/problem+json" and "POST" in wrong_method.headers["allow"]
        assert_problem(await api.post(facade("vs", "tools/fx__echo/more"), json={}), 404)
        assert_problem(await api.post(facade("vs", "tools/fx__echo%2Fx"), json={}), 404)


async def test_a_token_for_one_server_cannot_use_another_through_the_facade(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "a", "tools": ["fx__echo"]})
    await gateway.create_server({"name": "b", "tools": ["fx__echo", "fx__add"]})
    secret = (await create_token(gateway, servers=["a"]))["token"]
    async with await as_token(gateway, secret) as client:
        own = await client.post(facade("a", "tools/fx__echo"), json={"text": "mine"})
        assert own.status_code == 200 and own.json()["content"][0]["text"] == "mine"
        for path in ("tools/fx__echo", "tools/fx__add"):
            refused = assert_problem(await client.post(facade("b", path), json={"text": "x", "a": 1, "b": 1}), 403)
            assert refused["missing"] == "server:b"
        assert_problem(await client.get(facade("b", "openapi.json")), 403)
        assert_problem(await client.get(facade("b", "resources/read"), params={"uri": "fixture://static"}), 403)
    read_only = (await create_token(gateway, servers=["a"], permissions=["read"]))["token"]
    async with await as_token(gateway, read_only) as client:
        refused = assert_problem(await client.post(facade("a", "tools/fx__echo"), json={"text": "x"}), 403)
        assert refused["missing"] == "permission:mcp"
    async with httpx2.AsyncClient(base_url=gateway.base_url) as anonymous:
        missing = assert_problem(await anonymous.post(facade("a", "tools/fx__echo"), json={"text": "x"}), 401)
        assert missing["title"] == Unauthenticated.title


async def test_the_policy_decides_what_a_caller_may_call_and_sees_in_the_document(gateway: Running) -> None:
    opened, blocked = await policy_setup(gateway)
    async with await as_token(gateway, blocked) as client:
        assert (await client.post(facade("vs", "tools/fx__echo"), json={"text": "ok"})).status_code == 200
        denied = assert_problem(await client.post(facade("vs", "tools/fx__add"), json={"a": 1, "b": 2}), 403)
        assert denied["title"] == Forbidden.title
        # Policy first: a forbidden tool's schema is not checked (and so not revealed) for this caller.
        assert_problem(await client.post(facade("vs", "tools/fx__add"), json={"a": "x"}), 403)
        assert_problem(await client.post(facade("vs", "prompts/fx__greet"), json={"name": "x"}), 403)
        document = (await client.get(facade("vs", "openapi.json"))).json()
    paths = set(document["paths"])
    assert "/api/v1/servers/vs/tools/fx__echo" in paths and "/api/v1/servers/vs/tools/fx__add" not in paths
    assert not any("/prompts/" in p for p in paths)
    async with await as_token(gateway, opened) as client:
        document = (await client.get(facade("vs", "openapi.json"))).json()
    assert "/api/v1/servers/vs/tools/fx__add" in document["paths"]


async def test_rate_limits_refuse_facade_calls_with_429_and_retry_after(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"], "rate_limits": {"tools": {"fx__echo": "2/day"}}})
    for _ in range(2):
        assert (await gateway.api.post(facade("vs", "tools/fx__echo"), json={"text": "x"})).status_code == 200
    refused = await gateway.api.post(facade("vs", "tools/fx__echo"), json={"text": "x"})
    body = assert_problem(refused, 429)
    assert body["title"] == RateLimited.title and int(refused.headers["retry-after"]) >= 1
    # The facade and the MCP endpoint count against the same limit.
    async with gateway.client("vs") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("fx__echo", {"text": "x"})
        assert caught.value.code == RateLimited.jsonrpc_code


async def test_an_invisible_server_is_not_found_through_the_facade(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    assert_problem(await gateway.api.post(facade("ghost", "tools/fx__echo"), json={}), 404)
    assert (await gateway.api.get(facade("ghost", "openapi.json"))).json()["title"] == NotFound.title


async def test_the_server_document_is_valid_openapi_and_has_one_operation_per_tool(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "description": "Fixture tools"})
    response = await gateway.api.get(facade("vs", "openapi.json"))
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    validate(document)
    assert document["openapi"] == "3.1.0" and document["info"]["description"] == "Fixture tools"
    tools = (await gateway.api.get(facade("vs", "tools"))).json()["tools"]
    tool_paths = {p for p in document["paths"] if "/tools/" in p}
    assert tool_paths == {f"/api/v1/servers/vs/tools/{t['name']}" for t in tools}
    add = document["paths"]["/api/v1/servers/vs/tools/fx__add"]["post"]
    schema_ref = add["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"a", "b"}
    structured = add["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["structured"]
    assert structured["anyOf"][0]["$ref"].endswith(".output")
    assert "422" in add["responses"] and "/api/v1/servers/vs/resources/read" in document["paths"]


async def test_the_docs_page_lists_the_operations_and_loads_nothing_from_elsewhere(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    page = await gateway.api.get(facade("vs", "docs"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/v1/servers/vs/tools/fx__echo" in page.text
    policy = page.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'") and "script-src" not in policy
    assert not any(tag in page.text for tag in ("<script", "<link", "src=", "<img", "@import"))


async def test_a_viewer_cannot_use_a_server_through_the_facade_either(gateway: Running) -> None:
    """Viewers may read the catalog but not use servers: GETs on the facade are use, not reading."""
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
    await make_user(gateway, "viewer@example.com", "viewer")
    async with signed_in(gateway, "viewer@example.com") as viewer:
        assert (await viewer.get("/api/v1/servers/vs")).status_code == 200  # reading config is allowed
        for path in ("resources/read?uri=fixture://static", "openapi.json", "tools", "docs"):
            refused = assert_problem(await viewer.get(facade("vs", path)), 403)
            assert refused["missing"] == "role:developer"
        assert_problem(await viewer.post(facade("vs", "tools/fx__echo"), json={"text": "x"}), 403)


async def test_a_developer_cannot_reach_a_server_they_cannot_see(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "hidden", "upstreams": ["fx"], "visibility": "private"})
    await make_user(gateway, "dev@example.com", "developer", "devs")
    async with signed_in(gateway, "dev@example.com") as developer:
        hidden = assert_problem(await developer.post(facade("hidden", "tools/fx__echo"), json={"text": "x"}), 404)
        assert hidden["title"] == NotFound.title
        assert_problem(await developer.get(facade("hidden", "openapi.json")), 404)
