"""REST /api/v1/upstreams, plus authentication and unknown paths, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import Running, http_fixture, stdio_fixture

pytestmark = pytest.mark.anyio

FIXTURE_TOOLS = {"echo", "add", "fail", "slow", "progress", "crash", "pid", "add_tool", "whoami", "log"}


def assert_problem(response: httpx2.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


async def test_register_returns_counts_and_discovered(any_db_gateway: Running) -> None:
    body = await any_db_gateway.register(stdio_fixture("fx"))
    assert body["name"] == "fx"
    assert body["transport"] == "stdio"
    assert body["status"] == "healthy"
    assert body["enabled"] is True
    tools = body["discovered"]["tools"]
    assert {f"fx__{t}" for t in FIXTURE_TOOLS} <= set(tools)
    assert body["counts"] == {"tools": len(tools), "prompts": 1, "resources": 1, "resource_templates": 1}
    assert body["discovered"]["prompts"] == ["fx__greet"]
    assert body["discovered"]["resources"] == ["fx__static"]
    assert body["discovered"]["resource_templates"] == ["fx__item"]
    assert body["server_info"]["name"] == "fixture"


async def test_list_and_get(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("one"))
    await any_db_gateway.register(stdio_fixture("two"))
    listed = (await api.get("/api/v1/upstreams")).json()["items"]
    assert [u["name"] for u in listed] == ["one", "two"]
    one = await api.get("/api/v1/upstreams/one")
    assert one.status_code == 200
    assert one.json()["name"] == "one"
    assert one.json()["counts"]["tools"] >= len(FIXTURE_TOOLS)
    assert_problem(await api.get("/api/v1/upstreams/nope"), 404)


async def test_duplicate_registration_conflicts(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("fx"))
    assert_problem(await any_db_gateway.api.post("/api/v1/upstreams", json=stdio_fixture("fx")), 409)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Bad_Name", "transport": "stdio", "command": "x"},
        {"name": "fx", "transport": "stdio"},
        {"name": "fx", "transport": "streamable-http", "url": "ftp://x"},
        {"name": "fx", "transport": "carrier-pigeon", "url": "http://x"},
        {"name": "fx", "transport": "stdio", "command": "x", "bogus": 1},
    ],
)
async def test_invalid_registration_refused(any_db_gateway: Running, body: dict) -> None:
    assert_problem(await any_db_gateway.api.post("/api/v1/upstreams", json=body), 400)
    assert (await any_db_gateway.api.get("/api/v1/upstreams")).json()["items"] == []


async def test_disable_hides_tools_and_enable_restores_them(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    server = await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    before = server["exposed"]["tools"]
    assert {f"fx__{t}" for t in FIXTURE_TOOLS} <= set(before)

    response = await api.patch("/api/v1/upstreams/fx", json={"enabled": False})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "disabled"
    assert response.json()["enabled"] is False
    assert (await api.get("/api/v1/upstreams/fx")).json()["status"] == "disabled"
    assert (await api.get("/api/v1/servers/vs")).json()["exposed"]["tools"] == []

    response = await api.patch("/api/v1/upstreams/fx", json={"enabled": True})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "healthy"
    assert (await api.get("/api/v1/servers/vs")).json()["exposed"]["tools"] == before
    async with any_db_gateway.client("vs") as client:
        result = await client.call_tool("fx__echo", {"text": "back"})
        assert result.content[0].text == "back"


async def test_patch_refuses_unknown_field(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("fx"))
    body = assert_problem(await any_db_gateway.api.patch("/api/v1/upstreams/fx", json={"colour": "red"}), 400)
    assert "colour" in body["detail"]
    body = assert_problem(await any_db_gateway.api.patch("/api/v1/upstreams/fx", json={"name": "other"}), 400)
    assert (await any_db_gateway.api.get("/api/v1/upstreams/fx")).status_code == 200


async def test_patch_of_missing_upstream_is_404(any_db_gateway: Running) -> None:
    assert_problem(await any_db_gateway.api.patch("/api/v1/upstreams/nope", json={"enabled": False}), 404)


async def test_refresh(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("fx"))
    response = await any_db_gateway.api.post("/api/v1/upstreams/fx/refresh")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    assert "fx__echo" in body["discovered"]["tools"]
    assert_problem(await any_db_gateway.api.post("/api/v1/upstreams/nope/refresh"), 404)


async def test_delete_upstream_in_use_conflicts_then_force_detaches(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.register(stdio_fixture("keep"))
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"], "tools": ["fx__echo", "keep__add"]})

    body = assert_problem(await api.delete("/api/v1/upstreams/fx"), 409)
    assert "vs" in body["detail"]
    assert (await api.get("/api/v1/upstreams/fx")).status_code == 200

    response = await api.delete("/api/v1/upstreams/fx", params={"force": "true"})
    assert response.status_code == 204, response.text
    assert_problem(await api.get("/api/v1/upstreams/fx"), 404)
    server = (await api.get("/api/v1/servers/vs")).json()
    assert server["upstreams"] == []
    assert server["tools"] == ["keep__add"]
    assert server["exposed"]["tools"] == ["keep__add"]
    assert server["problems"] == []
    tools = (await api.get("/api/v1/tools")).json()["items"]
    assert all(t["upstream"] == "keep" for t in tools)


async def test_delete_unused_upstream(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("fx"))
    assert (await any_db_gateway.api.delete("/api/v1/upstreams/fx")).status_code == 204
    assert (await any_db_gateway.api.get("/api/v1/upstreams")).json()["items"] == []
    assert_problem(await any_db_gateway.api.delete("/api/v1/upstreams/fx"), 404)


async def test_env_values_never_returned(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    secret = "env-s3cret-value-9876"
    created = await api.post("/api/v1/upstreams", json={**stdio_fixture("fx"), "env": {"FX_TOKEN": secret}})
    assert created.status_code == 201, created.text
    assert created.json()["env"] == {"FX_TOKEN": "********"}
    for response in (
        created,
        await api.get("/api/v1/upstreams/fx"),
        await api.get("/api/v1/upstreams"),
        await api.patch("/api/v1/upstreams/fx", json={"isolation": "shared"}),
        await api.post("/api/v1/upstreams/fx/refresh"),
    ):
        assert response.status_code in (200, 201), response.text
        assert secret not in response.text
    assert (await api.get("/api/v1/upstreams/fx")).json()["env"] == {"FX_TOKEN": "********"}


async def test_a_masked_value_sent_back_keeps_the_stored_secret(gateway: Running) -> None:
    # A client that GETs an upstream, edits it and PATCHes it back sends the mask: it must not become
    # the credential the upstream is sent.
    api = gateway.api
    body = {**stdio_fixture("fx"), "env": {"FX_TOKEN": "env-s3cret", "FX_OTHER": "o"}}
    assert (await api.post("/api/v1/upstreams", json=body)).status_code == 201
    shown = (await api.get("/api/v1/upstreams/fx")).json()
    edited = {"env": {**shown["env"], "FX_OTHER": "new", "FX_ADDED": "a"}, "isolation": "shared"}
    patched = await api.patch("/api/v1/upstreams/fx", json=edited)
    assert patched.status_code == 200, patched.text
    stored = gateway.bastion.gateway.snapshot.upstreams["fx"].spec.env
    assert stored == {"FX_TOKEN": "env-s3cret", "FX_OTHER": "new", "FX_ADDED": "a"}
    unknown = await api.patch("/api/v1/upstreams/fx", json={"env": {"FX_NEW": "********"}})
    assert_problem(unknown, 400)
    assert "FX_NEW" in unknown.json()["detail"]


async def test_header_values_never_returned(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    secret = "hdr-s3cret-value-1234"
    with http_fixture() as upstream:
        created = await api.post("/api/v1/upstreams", json={**upstream.body("web"), "headers": {"X-Api-Key": secret}})
        assert created.status_code == 201, created.text
        assert created.json()["headers"] == {"X-Api-Key": "********"}
        for response in (created, await api.get("/api/v1/upstreams/web"), await api.get("/api/v1/upstreams")):
            assert secret not in response.text
        # Bad input echoing must not leak either.
        refused = await api.patch("/api/v1/upstreams/web", json={"headers": {"X-Api-Key": 12345}, "secret": secret})
        assert refused.status_code == 400
        assert secret not in refused.text
        await any_db_gateway.create_server({"name": "vs", "upstreams": ["web"]})
        async with any_db_gateway.client("vs") as client:
            seen = (await client.call_tool("web__whoami", {})).content[0].text
        assert secret in seen  # it really is sent upstream, just never shown
        assert (await api.delete("/api/v1/upstreams/web", params={"force": "true"})).status_code == 204


API_PATHS = [
    ("GET", "/api/v1/upstreams"),
    ("POST", "/api/v1/upstreams"),
    ("GET", "/api/v1/upstreams/fx"),
    ("PATCH", "/api/v1/upstreams/fx"),
    ("DELETE", "/api/v1/upstreams/fx"),
    ("POST", "/api/v1/upstreams/fx/refresh"),
    ("GET", "/api/v1/tools"),
    ("GET", "/api/v1/tools/fx__echo"),
    ("PATCH", "/api/v1/tools/fx__echo"),
    ("GET", "/api/v1/prompts"),
    ("GET", "/api/v1/prompts/fx__greet"),
    ("PATCH", "/api/v1/prompts/fx__greet"),
    ("GET", "/api/v1/resources"),
    ("GET", "/api/v1/resources/fx__static"),
    ("PATCH", "/api/v1/resources/fx__static"),
    ("GET", "/api/v1/servers"),
    ("POST", "/api/v1/servers"),
    ("GET", "/api/v1/servers/vs"),
    ("PATCH", "/api/v1/servers/vs"),
    ("DELETE", "/api/v1/servers/vs"),
    ("GET", "/api/v1/nothing-here"),
    ("POST", "/servers/vs/mcp"),
]


async def test_every_api_path_needs_the_token(any_db_gateway: Running) -> None:
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    async with httpx2.AsyncClient(base_url=any_db_gateway.base_url, timeout=30) as anon:
        for headers in ({}, {"Authorization": "Bearer bst_wrong-token"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
            for method, path in API_PATHS:
                response = await anon.request(method, path, headers=headers, json={"enabled": False})
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.headers["www-authenticate"].lower().startswith("bearer")
                assert response.json()["status"] == 401
        health = await anon.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        for probe in ("/healthz", "/readyz"):  # probes are read-only: any other method is a 405 that says so
            posted = assert_problem(await anon.post(probe, json={}), 405)
            assert probe in posted["detail"]
            assert (await anon.delete(probe)).headers["allow"] == "GET, HEAD"
    # Nothing above changed anything.
    assert (await any_db_gateway.api.get("/api/v1/upstreams/fx")).json()["enabled"] is True
    assert (await any_db_gateway.api.get("/api/v1/servers/vs")).status_code == 200


async def test_unknown_path_is_404_problem(any_db_gateway: Running) -> None:
    for path in ("/api/v1/nothing-here", "/nope", "/api/v2/upstreams"):
        body = assert_problem(await any_db_gateway.api.get(path), 404)
        assert path in body["detail"]
