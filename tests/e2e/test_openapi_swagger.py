"""A REST API described by the classic Swagger 2.0 Petstore document, served by a real HTTP service on
loopback: its form, multipart, csv-array and JSON operations called through Bastion over MCP and the
REST facade, and what the service received."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.harness import Running, serve_asgi

pytestmark = pytest.mark.anyio

DOCUMENT = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "openapi" / "petstore-swagger-2.0.json").read_text())


def petstore(seen: list[dict[str, Any]]) -> Starlette:
    doc = copy.deepcopy(DOCUMENT)
    del doc["host"], doc["schemes"]  # its base is then its basePath on the document's own host

    async def document(_request: Request) -> Response:
        return JSONResponse(doc)

    async def form(request: Request) -> Response:
        data = await request.form()
        seen.append({"op": "form", "type": request.headers.get("content-type"), "fields": dict(data)})
        return JSONResponse({"id": int(request.path_params["pet_id"]), "name": data.get("name"), "status": data.get("status")})

    async def upload(request: Request) -> Response:
        data = await request.form()
        upload = data.get("file")
        assert upload is not None and not isinstance(upload, str)
        content = await upload.read()
        seen.append({"op": "upload", "type": request.headers.get("content-type", "").split(";")[0],
                     "metadata": data.get("additionalMetadata"), "filename": upload.filename, "file": content.decode()})
        return JSONResponse({"code": 200, "type": "unknown", "message": f"{len(content)} bytes"})

    async def by_tags(request: Request) -> Response:
        seen.append({"op": "tags", "query": request.url.query})
        return JSONResponse([{"id": 1, "name": "rex", "photoUrls": []}])

    async def get_pet(request: Request) -> Response:
        return JSONResponse({"id": int(request.path_params["pet_id"]), "name": "rex", "photoUrls": [], "status": "sold"})

    async def add_pet(request: Request) -> Response:
        body = await request.json()
        seen.append({"op": "add", "type": request.headers.get("content-type"), "body": body})
        return JSONResponse({**body, "id": 9})

    return Starlette(routes=[
        Route("/swagger.json", document),
        Route("/v2/pet", add_pet, methods=["POST"]),
        Route("/v2/pet/findByTags", by_tags),
        Route("/v2/pet/{pet_id:int}", get_pet, methods=["GET"]),
        Route("/v2/pet/{pet_id:int}", form, methods=["POST"]),
        Route("/v2/pet/{pet_id:int}/uploadImage", upload, methods=["POST"]),
    ])


@pytest.fixture
async def service() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    async with serve_asgi(petstore(seen)) as base:
        yield base, seen


async def test_the_swagger_petstore_is_called_through_bastion(gateway: Running, service: Any) -> None:
    base, seen = service
    registered = await gateway.register({"name": "store", "transport": "openapi", "spec_url": f"{base}/swagger.json"})
    assert registered["server_info"] == {"name": "Swagger Petstore", "version": "1.0.7"}
    await gateway.create_server({"name": "vs", "upstreams": ["store"]})
    async with gateway.client("vs") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert len(tools) == 20
        got = await client.call_tool("store__getPetById", {"petId": 5})
        assert got.structured_content == {"id": 5, "name": "rex", "photoUrls": [], "status": "sold"}
        updated = await client.call_tool("store__updatePetWithForm", {"petId": 5, "name": "kit", "status": "pending"})
        assert not updated.is_error
        await client.call_tool("store__findPetsByTags", {"tags": ["a", "b"]})
    async with gateway.client("vs", mode="2026-07-28") as client:
        added = await client.call_tool("store__addPet", {"name": "doggie", "photoUrls": ["u"], "status": "available"})
        assert json.loads(added.content[0].text) == {"name": "doggie", "photoUrls": ["u"], "status": "available", "id": 9}  # type: ignore[union-attr]
    uploaded = await gateway.api.post(
        "/api/v1/servers/vs/tools/store__uploadFile", json={"petId": 5, "additionalMetadata": "front", "file": "PNG..."}
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["structured"] == {"code": 200, "type": "unknown", "message": "6 bytes"}
    assert seen == [
        {"op": "form", "type": "application/x-www-form-urlencoded", "fields": {"name": "kit", "status": "pending"}},
        {"op": "tags", "query": "tags=a%2Cb"},
        {"op": "add", "type": "application/json", "body": {"name": "doggie", "photoUrls": ["u"], "status": "available"}},
        {"op": "upload", "type": "multipart/form-data", "metadata": "front", "filename": "file", "file": "PNG..."},
    ]


async def test_a_swagger_1_document_is_refused_with_the_reason(gateway: Running) -> None:
    response = await gateway.api.post(
        "/api/v1/upstreams",
        json={"name": "old", "transport": "openapi", "spec": {"swaggerVersion": "1.2", "apis": []}, "base_url": "http://127.0.0.1:9"},
    )
    assert response.status_code in (400, 422, 502), response.text
    assert "Swagger 2.0" in response.text
    assert (await gateway.api.get("/api/v1/upstreams/old")).status_code == 404
