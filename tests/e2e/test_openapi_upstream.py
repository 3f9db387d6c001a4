"""REST APIs as MCP tools: an upstream described by an OpenAPI document, against a real REST
service on loopback, called over MCP and over the REST facade."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bastion.core.errors import Forbidden
from tests.harness import Running, serve, serve_asgi, settings_for
from tests.rest.test_upstreams_api import assert_problem
from tests.upstreams.rest_service import API_KEY, BEARER, DOCUMENT, build_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def service() -> AsyncIterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The REST service on loopback: its base URL, its live document (mutable) and what it saw."""
    document = copy.deepcopy(DOCUMENT)
    seen: dict[str, Any] = {}
    async with serve_asgi(build_app(document, seen=seen)) as base:
        yield base, document, seen


async def pets(gateway: Running, base: str, **extra: Any) -> dict[str, Any]:
    body = {"name": "pets", "transport": "openapi", "spec_url": f"{base}/openapi.json", **extra}
    registered = await gateway.register(body)
    await gateway.create_server({"name": "vs", "upstreams": ["pets"]})
    return registered


async def call(gateway: Running, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.api.post(f"/api/v1/servers/vs/tools/{tool}", json=arguments)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_each_operation_becomes_a_tool_with_merged_schemas(gateway: Running, service: Any) -> None:
    base, _, _ = service
    registered = await pets(gateway, base)
    assert registered["server_info"] == {"name": "Test pets", "version": "1.2.3"}
    async with gateway.client("vs") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {f"pets__{n}" for n in ("listPets", "createPet", "getPet", "deletePet", "whoami", "big", "broken", "elsewhere")}
    create = tools["pets__createPet"].input_schema
    assert set(create["properties"]) == {"X-Request-Id", "name", "tag"} and create["required"] == ["name"]
    assert create["properties"]["tag"]["type"] == ["string", "null"]  # 3.0 nullable, in 2020-12 terms
    assert tools["pets__getPet"].input_schema["required"] == ["petId"]
    assert tools["pets__getPet"].output_schema is not None and "$ref" not in json.dumps(tools["pets__getPet"].output_schema)
    assert tools["pets__listPets"].output_schema is None  # an array is no MCP output schema
    assert tools["pets__listPets"].annotations.read_only_hint is True
    assert tools["pets__deletePet"].annotations.destructive_hint is True


async def test_calls_carry_path_query_header_and_body_parameters(gateway: Running, service: Any) -> None:
    base, _, seen = service
    await pets(gateway, base)
    listed = await call(gateway, "pets__listPets", {"tag": "dog", "limit": 5})
    assert json.loads(listed["content"][0]["text"]) == [{"id": 1, "name": "rex", "tag": "dog"}]
    assert seen["authorization"] is None  # the caller's token never reaches the API
    created = await call(gateway, "pets__createPet", {"name": "kit", "tag": "cat", "X-Request-Id": "r-1"})
    assert created["structured"] == {"id": 3, "name": "kit", "tag": "cat"} and not created["is_error"]
    async with gateway.client("vs", mode="2026-07-28") as client:
        got = await client.call_tool("pets__getPet", {"petId": 3})
        assert got.structured_content == {"id": 3, "name": "kit", "tag": "cat"}
    invalid = assert_problem(await gateway.api.post("/api/v1/servers/vs/tools/pets__getPet", json={"petId": "x"}), 422)
    assert invalid["errors"][0]["pointer"] == "/petId"


async def test_errors_are_results_with_the_status_and_a_bounded_excerpt(gateway: Running, service: Any) -> None:
    base, _, _ = service
    await pets(gateway, base)
    missing = await call(gateway, "pets__getPet", {"petId": 99})
    assert missing["is_error"] and missing["content"][0]["text"] == 'HTTP 404 Not Found: {"error":"no such pet"}'
    broken = await call(gateway, "pets__broken", {})
    assert broken["is_error"] and broken["content"][0]["text"].startswith("HTTP 500")
    assert len(broken["content"][0]["text"]) < 2100
    big = await call(gateway, "pets__big", {})
    assert big["is_error"] and "more than the limit" in big["content"][0]["text"]
    # A redirect elsewhere is not followed with the upstream's credentials: it is the answer.
    redirected = await call(gateway, "pets__elsewhere", {})
    assert redirected["is_error"] and redirected["content"][0]["text"].startswith("HTTP 302")


async def test_a_10_mb_answer_is_delivered_under_a_higher_limit(tmp_path: Path, service: Any) -> None:
    base, _, _ = service
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", upstream_max_response_bytes=16 * 1024 * 1024)
    async with serve(settings) as gateway:
        await pets(gateway, base, include={"operations": ["big"]})
        big = await call(gateway, "pets__big", {})
        assert not big["is_error"] and len(big["content"][0]["text"]) == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("auth", "via"),
    [
        ({"type": "api_key_query", "name": "api_key", "value": API_KEY}, "query"),
        ({"type": "api_key", "header": "X-Api-Key", "value": API_KEY}, "header"),
        ({"type": "bearer", "token": BEARER}, "bearer"),
        ({"type": "basic", "username": "ada", "password": "secret"}, "basic"),
    ],
)
async def test_credentials_come_from_the_vault_and_never_show(gateway: Running, service: Any, auth: dict[str, Any], via: str) -> None:
    base, _, _ = service
    registered = await pets(gateway, base, auth=auth, include={"tags": ["auth"]})
    assert registered["counts"]["tools"] == 1
    assert (await call(gateway, "pets__whoami", {}))["structured"] is None
    answered = await call(gateway, "pets__whoami", {})
    assert json.loads(answered["content"][0]["text"]) == {"via": via}
    shown = (await gateway.api.get("/api/v1/upstreams/pets")).text
    for secret in (API_KEY, BEARER, "secret"):
        assert secret not in shown


async def test_yaml_documents_selections_and_refresh_after_a_change(gateway: Running, service: Any) -> None:
    base, document, _ = service
    body = {
        "name": "pets",
        "transport": "openapi",
        "spec_url": f"{base}/openapi.yaml",
        "include": {"tags": ["pets"], "paths": ["/secure/*"]},
        "exclude": {"operations": ["createPet"]},
    }
    registered = await gateway.register(body)
    assert sorted(registered["discovered"]["tools"]) == ["pets__getPet", "pets__listPets", "pets__whoami"]
    document["paths"]["/pets/{petId}"]["put"] = {"operationId": "updatePet", "tags": ["pets"], "responses": {}}
    refreshed = await gateway.api.post("/api/v1/upstreams/pets/refresh")
    assert "pets__updatePet" in refreshed.json()["discovered"]["tools"]


async def test_a_document_that_went_bad_since_is_the_upstreams_fault_on_refresh(gateway: Running, service: Any) -> None:
    base, document, _ = service
    await gateway.register({"name": "pets", "transport": "openapi", "spec_url": f"{base}/openapi.json"})
    document["paths"]["/pets/{petId}"]["get"]["responses"] = 5  # the vendor publishes a broken document
    refreshed = await gateway.api.post("/api/v1/upstreams/pets/refresh")
    # Not a 422 (the editor's request was fine): a 502 naming what is wrong with the upstream's document.
    assert refreshed.status_code == 502, refreshed.text
    assert "/pets/{petId}" in refreshed.json()["detail"] and "responses" in refreshed.json()["detail"], refreshed.json()


async def test_an_inline_document_with_a_base_url(gateway: Running, service: Any) -> None:
    base, _, _ = service
    body = {"name": "pets", "transport": "openapi", "spec": DOCUMENT, "base_url": f"{base}/v1", "include": {"operations": ["getPet"]}}
    registered = await gateway.register(body)
    assert registered["openapi"]["spec_url"] is None and registered["openapi"]["inline_spec_operations"] >= 8
    await gateway.create_server({"name": "vs", "upstreams": ["pets"]})
    assert (await call(gateway, "pets__getPet", {"petId": 1}))["structured"]["name"] == "rex"
    for bad in ({"spec": {"not": "openapi"}}, {}, {"spec": DOCUMENT, "spec_url": f"{base}/openapi.json"}):
        refused = await gateway.api.post("/api/v1/upstreams", json={"name": "bad", "transport": "openapi", **bad})
        assert refused.status_code in (400, 422), refused.text


async def test_a_document_that_redirects_to_a_forbidden_address_is_refused(tmp_path: Path, service: Any) -> None:
    base, _, _ = service
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", allow_private_upstreams=False, upstream_allowed_networks=("127.0.0.1/32",)
    )
    async with serve(settings) as gateway:
        ok = await gateway.api.post("/api/v1/upstreams", json={"name": "ok", "transport": "openapi", "spec_url": f"{base}/openapi.json"})
        assert ok.status_code == 201, ok.text
        refused = await gateway.api.post(
            "/api/v1/upstreams", json={"name": "bad", "transport": "openapi", "spec_url": f"{base}/v1/elsewhere"}
        )
        body = assert_problem(refused, 403)
        assert body["title"] == "Upstream address refused" and issubclass(type(Forbidden("x")), Forbidden)


async def test_a_rest_upstream_survives_a_restart(tmp_path: Path, service: Any) -> None:
    base, _, _ = service
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")
    async with serve(settings) as gateway:
        await pets(gateway, base, auth={"type": "api_key_query", "name": "api_key", "value": API_KEY}, include={"tags": ["auth"]})
    async with serve(settings) as gateway:
        shown = (await gateway.api.get("/api/v1/upstreams/pets")).json()
        assert shown["openapi"]["include"]["tags"] == ["auth"] and shown["auth"]["value"] == "********"
        assert json.loads((await call(gateway, "pets__whoami", {}))["content"][0]["text"]) == {"via": "query"}


async def test_a_document_that_went_bad_since_is_the_upstreams_fault_on_the_first_call_after_a_restart(
    tmp_path: Path, service: Any
) -> None:
    base, document, _ = service
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")
    async with serve(settings) as gateway:
        await pets(gateway, base)
    document["paths"]["/pets/{petId}"]["get"]["responses"] = 5  # the vendor publishes a broken document
    async with serve(settings) as gateway:  # read again on the first call, as on a refresh: a 502, not a 422
        called = await gateway.api.post("/api/v1/servers/vs/tools/pets__getPet", json={"petId": 1})
        body = assert_problem(called, 502)
        assert "can no longer be used" in body["detail"] and "/pets/{petId}" in body["detail"], body


async def test_a_query_key_sent_back_as_shown_keeps_the_stored_key(gateway: Running, service: Any) -> None:
    # GET shows the key as ********; a client that PATCHes what it read must not make the mask the key.
    base, _, _ = service
    await pets(gateway, base, auth={"type": "api_key_query", "name": "api_key", "value": API_KEY}, include={"tags": ["auth"]})
    shown = (await gateway.api.get("/api/v1/upstreams/pets")).json()
    patched = await gateway.api.patch("/api/v1/upstreams/pets", json={"auth": shown["auth"]})
    assert patched.status_code == 200, patched.text
    assert json.loads((await call(gateway, "pets__whoami", {}))["content"][0]["text"]) == {"via": "query"}
    renamed = await gateway.api.patch("/api/v1/upstreams/pets", json={"auth": {**shown["auth"], "name": "key"}})
    assert renamed.status_code == 200, renamed.text
    spec = gateway.bastion.gateway.snapshot.upstreams["pets"].spec
    assert spec.auth is not None and spec.auth.value == API_KEY  # type: ignore[union-attr]
    masked = await gateway.api.patch("/api/v1/upstreams/pets", json={"auth": None})
    assert masked.status_code == 200, masked.text
    refused = await gateway.api.patch("/api/v1/upstreams/pets", json={"auth": shown["auth"]})
    body = assert_problem(refused, 400)
    assert "********" in body["detail"]
