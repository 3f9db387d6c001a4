"""Attack class: upstream fields that the outbound HTTP client or the process spawner cannot use
(header names and values with control or non-ASCII characters, URLs with spaces or CR/LF, NUL bytes
in a child's command line or environment). Registration and update refuse them with a 400 naming the
field, instead of a 500 from the HTTP client or a 502 that blames the upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.harness import Running, http_fixture, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

DEAD_URL = "http://127.0.0.1:9/mcp"  # never reached: the input is refused before any connection


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("upstream-fields")
    with http_fixture() as upstream:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
            await running.register(upstream.body("web"))
            yield running


def _refused(response: httpx2.Response, *words: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    for word in words:
        assert word in response.json()["detail"]


HTTP_BODIES: dict[str, dict[str, Any]] = {
    "non-ascii-value": {"headers": {"X-Key": "clé☃"}},
    "crlf-in-value": {"headers": {"X-Key": "a\r\nX-Injected: 1"}},
    "nul-in-value": {"headers": {"X-Key": "a\x00b"}},
    "space-in-name": {"headers": {"X Key": "a"}},
    "colon-in-name": {"headers": {"X-Key:": "a"}},
    "empty-name": {"headers": {"": "a"}},
    "non-ascii-bearer": {"auth": {"type": "bearer", "token": "jeton-é"}},
    "bad-api-key-header": {"auth": {"type": "api_key", "header": "X Key", "value": "a"}},
}


@pytest.mark.parametrize("extra", HTTP_BODIES.values(), ids=HTTP_BODIES.keys())
async def test_a_header_the_http_client_cannot_send_is_refused_at_registration(gateway: Running, extra: dict[str, Any]) -> None:
    body = {"name": "bad", "transport": "streamable-http", "url": DEAD_URL, **extra}
    response = await gateway.api.post("/api/v1/upstreams", json=body)
    _refused(response, "header")
    assert "☃" not in response.text and "jeton" not in response.text  # values may be secrets


async def test_a_header_the_http_client_cannot_send_is_refused_on_update(gateway: Running) -> None:
    response = await gateway.api.patch("/api/v1/upstreams/web", json={"headers": {"X-Key": "clé"}})
    _refused(response, "header")
    assert (await gateway.api.get("/api/v1/upstreams/web")).json()["status"] == "healthy"


async def test_printable_header_values_are_still_accepted(gateway: Running) -> None:
    response = await gateway.api.patch("/api/v1/upstreams/web", json={"headers": {"X-Key": "a b\t~!\"#"}})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/m\x00cp", "http://127.0.0.1:9/m cp", "http://127.0.0.1:9/mcp\r\nX: 1", "http://127.0.0.1:9/mcp\t"])
async def test_a_url_with_spaces_or_control_characters_is_refused(gateway: Running, url: str) -> None:
    response = await gateway.api.post("/api/v1/upstreams", json={"name": "bad", "transport": "streamable-http", "url": url})
    _refused(response, "url")


STDIO_BODIES: dict[str, dict[str, Any]] = {
    "nul-in-arg": {"args": ["a\x00b"]},
    "nul-in-env-value": {"env": {"TOKEN": "a\x00b"}},
    "equals-in-env-name": {"env": {"A=B": "c"}},
    "empty-env-name": {"env": {"": "c"}},
}


@pytest.mark.parametrize("extra", STDIO_BODIES.values(), ids=STDIO_BODIES.keys())
async def test_a_process_that_cannot_be_started_is_refused(gateway: Running, extra: dict[str, Any]) -> None:
    body = {**stdio_fixture("bad"), **extra}
    body["args"] = body["args"] if "args" not in extra else [*stdio_fixture("bad")["args"], *extra["args"]]
    response = await gateway.api.post("/api/v1/upstreams", json=body)
    _refused(response)
    assert (await gateway.api.get("/api/v1/upstreams/bad")).status_code == 404
