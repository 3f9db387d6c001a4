"""A real REST service for the OpenAPI upstream tests (Starlette, served on loopback in the test).

It publishes its own OpenAPI 3.0 document (JSON at /openapi.json, YAML at /openapi.yaml) with
path, query, header and body parameters and $refs, and has endpoints for auth, errors, a 10 MB
answer and redirects.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

API_KEY = "key-0123456789"
BEARER = "bearer-0123456789"
BIG = 10 * 1024 * 1024

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Test pets", "version": "1.2.3"},
    "servers": [{"url": "/v1"}],
    "paths": {
        "/pets": {
            "get": {
                "operationId": "listPets",
                "summary": "List pets",
                "tags": ["pets"],
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"$ref": "#/components/parameters/Tag"},
                ],
                "responses": {
                    "200": {
                        "description": "pets",
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}
                        },
                    }
                },
            },
            "post": {
                "operationId": "createPet",
                "summary": "Create a pet",
                "tags": ["pets"],
                "parameters": [{"name": "X-Request-Id", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewPet"}}},
                },
                "responses": {
                    "201": {
                        "description": "created",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
                    }
                },
            },
        },
        "/pets/{petId}": {
            "parameters": [{"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": {
                "operationId": "getPet",
                "tags": ["pets"],
                "responses": {
                    "200": {
                        "description": "a pet",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
                    },
                    "404": {"description": "no such pet"},
                },
            },
            "delete": {"operationId": "deletePet", "tags": ["admin"], "responses": {"204": {"description": "gone"}}},
        },
        "/secure/whoami": {
            "get": {"operationId": "whoami", "tags": ["auth"], "responses": {"200": {"description": "who"}}},
        },
        "/big": {"get": {"operationId": "big", "responses": {"200": {"description": "10 MB"}}}},
        "/broken": {"get": {"operationId": "broken", "responses": {"200": {"description": "never"}}}},
        "/elsewhere": {"get": {"operationId": "elsewhere", "responses": {"200": {"description": "redirects"}}}},
    },
    "components": {
        "parameters": {"Tag": {"name": "tag", "in": "query", "schema": {"type": "string"}}},
        "schemas": {
            "NewPet": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "tag": {"type": "string", "nullable": True}},
            },
            "Pet": {
                "allOf": [{"$ref": "#/components/schemas/NewPet"}],
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "integer"}},
            },
        },
    },
}


def build_app(
    document: dict[str, Any] | None = None, redirect_to: str = "http://127.0.0.2:9/openapi.json", seen: dict[str, Any] | None = None
) -> Starlette:
    """The service; `document` (default DOCUMENT) is served live, so a test may change it; `seen`
    records the last request's credentials-bearing headers."""
    doc = document if document is not None else DOCUMENT
    seen = seen if seen is not None else {}
    pets: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "rex", "tag": "dog"}, 2: {"id": 2, "name": "tom", "tag": "cat"}}
    async def list_pets(request: Request) -> Response:
        seen["authorization"] = request.headers.get("authorization")
        tag = request.query_params.get("tag")
        found = [p for p in pets.values() if tag is None or p["tag"] == tag]
        return JSONResponse(found[: int(request.query_params.get("limit", "100"))])

    async def create_pet(request: Request) -> Response:
        body = await request.json()
        pet = {"id": max(pets) + 1, "name": body["name"], "tag": body.get("tag")}
        pets[pet["id"]] = pet
        seen["request_id"] = request.headers.get("x-request-id")
        return JSONResponse(pet, status_code=201)

    async def get_pet(request: Request) -> Response:
        pet = pets.get(int(request.path_params["pet_id"]))
        return JSONResponse(pet) if pet else JSONResponse({"error": "no such pet"}, status_code=404)

    async def delete_pet(request: Request) -> Response:
        pets.pop(int(request.path_params["pet_id"]), None)
        return Response(status_code=204)

    async def whoami(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if request.query_params.get("api_key") == API_KEY:
            return JSONResponse({"via": "query"})
        if request.headers.get("x-api-key") == API_KEY:
            return JSONResponse({"via": "header"})
        if auth == f"Bearer {BEARER}":
            return JSONResponse({"via": "bearer"})
        if auth.startswith("Basic ") and base64.b64decode(auth[6:]).decode() == "ada:secret":
            return JSONResponse({"via": "basic"})
        return JSONResponse({"error": "who are you?"}, status_code=401)

    async def big(_request: Request) -> Response:
        return PlainTextResponse("x" * BIG)

    async def broken(_request: Request) -> Response:
        return PlainTextResponse("internal trouble " * 1000, status_code=500)

    async def elsewhere(_request: Request) -> Response:
        return RedirectResponse(redirect_to, status_code=302)

    async def document(_request: Request) -> Response:
        return JSONResponse(doc)

    async def document_yaml(_request: Request) -> Response:
        return Response(yaml.safe_dump(doc), media_type="application/yaml")

    return Starlette(
        routes=[
            Route("/openapi.json", document),
            Route("/openapi.yaml", document_yaml),
            Route("/v1/pets", list_pets, methods=["GET"]),
            Route("/v1/pets", create_pet, methods=["POST"]),
            Route("/v1/pets/{pet_id:int}", get_pet, methods=["GET"]),
            Route("/v1/pets/{pet_id:int}", delete_pet, methods=["DELETE"]),
            Route("/v1/secure/whoami", whoami),
            Route("/v1/big", big),
            Route("/v1/broken", broken),
            Route("/v1/elsewhere", elsewhere),
        ]
    )
