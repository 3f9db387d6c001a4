"""A small MCP Registry (API v0.1) for the tests, serving the real-shaped server.json documents in
tests/upstreams/registry/: GET /v0.1/servers (cursor, limit, search, updated_since) and the
version endpoints. `hang` makes every request wait until the test ends (a registry that times out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DOCUMENTS = Path(__file__).parent / "registry"
OFFICIAL = "io.modelcontextprotocol.registry/official"
UPDATED = "2025-12-01T10:00:00Z"


def load_documents(fixture_url: str) -> list[dict[str, Any]]:
    text = {p.name: p.read_text().replace("{FIXTURE_URL}", fixture_url) for p in sorted(DOCUMENTS.glob("*.json"))}
    return [json.loads(t) for t in text.values()]


def _latest(docs: list[dict[str, Any]], doc: dict[str, Any]) -> bool:
    versions = [d["version"] for d in docs if d["name"] == doc["name"]]
    return doc["version"] == max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def registry_app(docs: list[dict[str, Any]], hang: anyio.Event | None = None) -> Starlette:
    requests: list[dict[str, str]] = []

    def wrapped(doc: dict[str, Any]) -> dict[str, Any]:
        meta = {"status": "active", "publishedAt": UPDATED, "updatedAt": UPDATED, "isLatest": _latest(docs, doc)}
        return {"server": doc, "_meta": {OFFICIAL: meta}}

    async def list_servers(request: Request) -> Response:
        requests.append(dict(request.query_params))
        if hang is not None:
            await hang.wait()
        params = request.query_params
        limit = int(params.get("limit", "30"))
        ordered = sorted(docs, key=lambda d: (d["name"], d["version"]))
        if "search" in params:
            ordered = [d for d in ordered if params["search"].lower() in d["name"].lower()]
        if "updated_since" in params and params["updated_since"] >= UPDATED:
            ordered = []
        start = int(params.get("cursor", "0"))
        page = ordered[start : start + limit]
        metadata: dict[str, Any] = {"count": len(page)}
        if start + limit < len(ordered):
            metadata["nextCursor"] = str(start + limit)
        return JSONResponse({"servers": [wrapped(d) for d in page], "metadata": metadata})

    async def versions(request: Request) -> Response:
        found = [wrapped(d) for d in docs if d["name"] == request.path_params["name"]]
        if not found:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"servers": found, "metadata": {"count": len(found)}})

    async def version(request: Request) -> Response:
        name, wanted = request.path_params["name"], request.path_params["version"]
        for doc in docs:
            if doc["name"] == name and (doc["version"] == wanted or (wanted == "latest" and _latest(docs, doc))):
                return JSONResponse(wrapped(doc))
        return JSONResponse({"error": "not found"}, status_code=404)

    app = Starlette(
        routes=[
            Route("/v0.1/servers", list_servers),
            Route("/v0.1/servers/{name:path}/versions", versions),
            Route("/v0.1/servers/{name:path}/versions/{version}", version),
        ]
    )
    app.state.requests = requests
    return app
