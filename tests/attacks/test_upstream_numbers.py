"""Attack class: an upstream whose tool definitions hold a number JSON text cannot carry once parsed:
`1e400` (past a float's range, read as infinity) or the non-JSON `NaN` and `Infinity` that Python's
parser accepts. On PostgreSQL the catalog's JSON column refused the definition: registering the
upstream was a 500. On SQLite it was stored and listed to clients as `Infinity`, which is not JSON.
Now the upstream's answer is malformed (502, naming the tool and the place), and nothing is saved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.attacks.network import PUBLIC, public_upstream
from tests.harness import Running, postgres_database, serve, settings_for

pytestmark = pytest.mark.anyio


def odd_numbers(number: bytes) -> object:
    """Middleware: every tool's inputSchema in the upstream's answers gains `"maximum": <number>`."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                elif message["type"] == "http.response.body":
                    body = message.get("body", b"")
                    message["body"] = body.replace(b'"inputSchema":{', b'"inputSchema":{"maximum":' + number + b",")
                await send(message)

            await app(scope, receive, sending)

        return wrapped

    return wrap


@pytest.fixture(params=["postgres", "sqlite"])
async def strict(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    async with AsyncExitStack() as stack:
        url = f"sqlite+aiosqlite:///{tmp_path}/b.db"
        if request.param == "postgres":
            url = await stack.enter_async_context(postgres_database())
        settings = settings_for(url, allow_private_upstreams=False, upstream_allowed_networks=(f"{PUBLIC}/32",))
        yield await stack.enter_async_context(serve(settings))


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"NaN", b"Infinity"])
async def test_an_upstream_tool_schema_with_a_number_json_cannot_carry_is_refused_as_malformed(strict: Running, number: bytes) -> None:
    async with public_upstream(odd_numbers(number)) as url:  # type: ignore[arg-type]
        response = await strict.api.post("/api/v1/upstreams", json={"name": "pub", "transport": "streamable-http", "url": url})
    assert response.status_code == 502, response.text
    # 1e400 is read as an infinity, and found in the definition; NaN and Infinity, which no JSON spells,
    # are refused as the upstream's answer is read (test_upstream_unfit_results.py).
    assert "cannot carry" in response.json()["detail"], response.text
    assert "inputSchema.maximum" in response.json()["detail"] or number in (b"NaN", b"Infinity"), response.text
    assert (await strict.api.get("/api/v1/upstreams/pub")).status_code == 404
