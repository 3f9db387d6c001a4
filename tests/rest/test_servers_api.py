"""REST /api/v1/servers: compose virtual servers, refuse collisions and bad references."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import Running, stdio_fixture

pytestmark = pytest.mark.anyio


def assert_problem(response: httpx2.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body["detail"]


async def test_create_get_list_patch_delete(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    created = await any_db_gateway.create_server(
        {"name": "vs", "description": "Test server", "tools": ["fx__echo", "fx__add"], "prompts": ["fx__greet"]}
    )
    assert created["name"] == "vs"
    assert created["description"] == "Test server"
    assert created["prefix"] == "always"
    assert created["tools"] == ["fx__echo", "fx__add"]
    assert created["exposed"]["tools"] == ["fx__add", "fx__echo"]
    assert created["exposed"]["prompts"] == ["fx__greet"]
    assert created["url"].endswith("/servers/vs/mcp")
    assert created["sse_url"].endswith("/servers/vs/sse")
    assert created["problems"] == []

    assert (await api.get("/api/v1/servers/vs")).json() == created
    await any_db_gateway.create_server({"name": "other", "resources": ["fx__static"]})
    listed = (await api.get("/api/v1/servers")).json()["items"]
    assert [s["name"] for s in listed] == ["other", "vs"]
    assert listed[0]["exposed"]["resources"] == ["fixture://static"]

    response = await api.patch("/api/v1/servers/vs", json={"tools": ["fx__echo"], "description": "Changed"})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["exposed"]["tools"] == ["fx__echo"]
    assert patched["description"] == "Changed"
    assert patched["prompts"] == ["fx__greet"]  # fields not in the patch are kept
    response = await api.patch("/api/v1/servers/vs", json={"prefix": "never", "name": "vs"})
    assert response.status_code == 200, response.text
    assert response.json()["exposed"]["tools"] == ["echo"]
    async with any_db_gateway.client("vs") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["echo"]
        assert (await client.call_tool("echo", {"text": "x"})).content[0].text == "x"

    assert (await api.delete("/api/v1/servers/vs")).status_code == 204
    assert_problem(await api.get("/api/v1/servers/vs"), 404)
    assert_problem(await api.delete("/api/v1/servers/vs"), 404)
    assert_problem(await api.patch("/api/v1/servers/vs", json={"tools": []}), 404)
    assert [s["name"] for s in (await api.get("/api/v1/servers")).json()["items"]] == ["other"]
    # Its MCP endpoint is gone too.
    assert (await api.post("/servers/vs/mcp", json={})).status_code == 404


async def test_duplicate_server_conflicts(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    assert_problem(await any_db_gateway.api.post("/api/v1/servers", json={"name": "vs"}), 409)


async def test_whole_upstreams_with_prefix_never_collide(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("a"))
    await any_db_gateway.register(stdio_fixture("b"))
    body = {"name": "both", "upstreams": ["a", "b"], "prefix": "never"}
    detail = assert_problem(await api.post("/api/v1/servers", json=body), 409)
    assert "a__" in detail and "b__" in detail
    assert "tool name 'echo'" in detail and "'a__echo'" in detail and "'b__echo'" in detail
    assert_problem(await api.get("/api/v1/servers/both"), 404)

    created = await any_db_gateway.create_server({**body, "prefix": "always"})
    assert "a__echo" in created["exposed"]["tools"] and "b__echo" in created["exposed"]["tools"]
    assert created["exposed"]["prompts"] == ["a__greet", "b__greet"]
    # Both offer fixture://static; URIs are never prefixed, so the first upstream's serves it.
    assert created["exposed"]["resources"] == ["fixture://static"]
    assert any("fixture://static" in p for p in created["problems"])
    async with any_db_gateway.client("both") as client:
        assert (await client.call_tool("b__echo", {"text": "from b"})).content[0].text == "from b"
        read = await client.read_resource("fixture://static")
        assert read.contents[0].text == "static content"
    # Switching an existing server to "never" is refused the same way, and leaves it as it was.
    assert_problem(await api.patch("/api/v1/servers/both", json={"prefix": "never"}), 409)
    assert (await api.get("/api/v1/servers/both")).json()["prefix"] == "always"


async def test_prefix_never_with_disjoint_selection_is_fine(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("a"))
    await any_db_gateway.register(stdio_fixture("b"))
    created = await any_db_gateway.create_server({"name": "mix", "tools": ["a__echo", "b__add"], "prefix": "never"})
    assert created["exposed"]["tools"] == ["add", "echo"]


async def test_unknown_references_refused(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    for body, named in (
        ({"name": "vs", "tools": ["fx__nope"]}, "fx__nope"),
        ({"name": "vs", "prompts": ["fx__echo"]}, "fx__echo"),
        ({"name": "vs", "resources": ["zz__static"]}, "zz__static"),
        ({"name": "vs", "upstreams": ["zz"]}, "zz"),
    ):
        assert named in assert_problem(await api.post("/api/v1/servers", json=body), 400)
    assert (await api.get("/api/v1/servers")).json()["items"] == []
    await any_db_gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    assert_problem(await api.patch("/api/v1/servers/vs", json={"tools": ["fx__gone"]}), 400)
    assert (await api.get("/api/v1/servers/vs")).json()["tools"] == ["fx__echo"]


async def test_rename_refused(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    assert "renamed" in assert_problem(await api.patch("/api/v1/servers/vs", json={"name": "other"}), 400)
    assert (await api.get("/api/v1/servers/vs")).status_code == 200
    assert_problem(await api.get("/api/v1/servers/other"), 404)


async def test_bad_input_refused(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    raw = {"content-type": "application/json"}
    assert_problem(await api.post("/api/v1/servers", content=b'{"name": "vs",', headers=raw), 400)
    assert_problem(await api.post("/api/v1/servers", content=b"", headers=raw), 400)
    assert_problem(await api.post("/api/v1/servers", content=b"\xff\xfe", headers=raw), 400)
    assert_problem(await api.post("/api/v1/servers", json=["vs"]), 400)
    assert_problem(await api.post("/api/v1/servers", json={"name": "Bad Name"}), 400)
    assert_problem(await api.post("/api/v1/servers", json={"name": "vs", "prefix": "sometimes"}), 400)
    assert_problem(await api.post("/api/v1/servers", json={"name": "vs", "tools": "fx__echo"}), 400)
    assert_problem(await api.post("/api/v1/servers", json={"name": "vs", "colour": "red"}), 400)
    assert_problem(await api.post("/api/v1/servers", json={"tools": []}), 400)
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    assert_problem(await api.patch("/api/v1/servers/vs", content=b"not json", headers=raw), 400)
    assert_problem(await api.patch("/api/v1/servers/vs", json={"colour": "red"}), 400)
    assert [s["name"] for s in (await api.get("/api/v1/servers")).json()["items"]] == ["vs"]


async def test_repeated_references_are_kept_once(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("fx"))
    created = await any_db_gateway.create_server({"name": "vs", "tools": ["fx__echo", "fx__echo"], "upstreams": ["fx", "fx"]})
    assert created["tools"] == ["fx__echo"]
    assert created["upstreams"] == ["fx"]
