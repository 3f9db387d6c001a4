"""GET /v0.1/servers on Bastion: the virtual servers a caller may see, as MCP Registry server.json documents.

Each document's remotes are the virtual server's MCP URLs (streamable HTTP and SSE). Only servers the
caller may use are listed; no upstream, credential or policy detail is included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.gateway import Gateway
from bastion.core.errors import BadRequest, NotFound
from bastion.core.grants import ALL_SERVERS
from bastion.core.models import VirtualServerSpec
from bastion.core.registry import SCHEMA_URL
from bastion.core.registry_listing import OFFICIAL_META
from bastion.pipeline.context import Principal
from bastion.web.rest.access import principal_of
from bastion.web.rest.listing import count

VERSION = "1.0.0"
"""Virtual servers are not versioned; each is offered as one version that is always the latest."""
MAX_LIMIT = 100


def namespace_for(base_url: str) -> str:
    """Reverse-DNS namespace of the gateway's host (`mcp.example.com` -> `com.example.mcp`)."""
    host = urlsplit(base_url).hostname or "localhost"
    labels = host.split(".")
    return host if all(p.isdigit() for p in labels) or len(labels) == 1 else ".".join(reversed(labels))


def server_document(spec: VirtualServerSpec, base_url: str, namespace: str) -> dict[str, Any]:
    description = spec.description or f"Bastion virtual server {spec.name}"
    return {
        "$schema": SCHEMA_URL,
        "name": f"{namespace}/{spec.name}",
        "title": spec.name,
        "description": description[:100],
        "version": VERSION,
        "remotes": [
            {"type": "streamable-http", "url": f"{base_url}/servers/{spec.name}/mcp"},
            {"type": "sse", "url": f"{base_url}/servers/{spec.name}/sse"},
        ],
    }


def _wrapped(doc: dict[str, Any]) -> dict[str, Any]:
    return {"server": doc, "_meta": {OFFICIAL_META: {"status": "active", "isLatest": True}}}


def registry_serve_routes(
    gateway: Gateway, base_url: str, may_use: Callable[[Principal, str], bool]
) -> list[Route]:
    namespace = namespace_for(base_url)

    def visible(request: Request) -> list[VirtualServerSpec]:
        principal = principal_of(request)
        grants = principal.grants
        return [
            v.spec
            for n, v in sorted(gateway.snapshot.servers.items())
            if may_use(principal, n) and (grants is None or grants.servers == ALL_SERVERS or n in grants.servers)
        ]

    def find(request: Request) -> VirtualServerSpec:
        name = request.path_params["name"]
        for spec in visible(request):
            if f"{namespace}/{spec.name}" == name:
                return spec
        raise NotFound(f"server {name!r} does not exist")

    async def list_servers(request: Request) -> Response:
        params = request.query_params
        limit = count(request, "limit", 30, 1, MAX_LIMIT)
        text = params.get("search", "").lower()
        cursor = params.get("cursor", "")
        if cursor and not cursor.startswith(f"{namespace}/"):  # each is a server's name, in our namespace
            raise BadRequest("cursor must be a nextCursor this list returned")
        docs = [server_document(s, base_url, namespace) for s in visible(request)]
        docs = [d for d in docs if text in d["name"].lower() and d["name"] > cursor]
        page = docs[:limit]
        metadata: dict[str, Any] = {"count": len(page)}
        if len(docs) > limit:
            metadata["nextCursor"] = page[-1]["name"]
        return JSONResponse({"servers": [_wrapped(d) for d in page], "metadata": metadata})

    async def versions(request: Request) -> Response:
        doc = server_document(find(request), base_url, namespace)
        return JSONResponse({"servers": [_wrapped(doc)], "metadata": {"count": 1}})

    async def version(request: Request) -> Response:
        spec = find(request)
        if request.path_params["version"] not in ("latest", VERSION):
            raise NotFound(f"server {request.path_params['name']!r} has no version {request.path_params['version']!r}")
        return JSONResponse(_wrapped(server_document(spec, base_url, namespace)))

    return [
        Route("/v0.1/servers", list_servers, methods=["GET"]),
        Route("/v0.1/servers/{name:path}/versions", versions, methods=["GET"]),
        Route("/v0.1/servers/{name:path}/versions/{version}", version, methods=["GET"]),
    ]
