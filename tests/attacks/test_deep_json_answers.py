"""Attack class: JSON nested far past Python's recursion limit in what a registry or an A2A agent
answers. `json.loads` raises RecursionError for it, which none of those readers expected: the API
answered 500. Such an answer is refused as any malformed answer is, naming who sent it."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.harness import serve, serve_asgi, settings_for

pytestmark = pytest.mark.anyio
DEEP = b"[" * 100_000 + b"]" * 100_000


def deep(request: Request) -> Response:
    return Response(DEEP, media_type="application/json")


async def test_a_registry_answering_json_nested_past_the_recursion_limit_is_refused(tmp_path: Path) -> None:
    registry = Starlette(routes=[Route("/v0.1/servers", deep)])
    async with serve_asgi(registry) as url, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        refused = await gw.api.post("/api/v1/registries", json={"name": "deep", "url": url})
        assert refused.status_code in (400, 502), refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "registry source 'deep'" in refused.json()["detail"], refused.text
        assert (await gw.api.get("/readyz")).status_code == 200


async def test_an_a2a_agent_card_nested_past_the_recursion_limit_is_refused(tmp_path: Path) -> None:
    agent = Starlette(routes=[Route("/.well-known/agent-card.json", deep)])
    async with serve_asgi(agent) as base, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        url = f"{base}/.well-known/agent-card.json"
        refused = await gw.api.post("/api/v1/upstreams", json={"name": "agent", "transport": "a2a", "url": url})
        assert 400 <= refused.status_code < 500 or refused.status_code in (502, 504), refused.text
        assert refused.status_code != 500 and refused.headers["content-type"] == "application/problem+json"
        assert (await gw.api.get("/readyz")).status_code == 200
