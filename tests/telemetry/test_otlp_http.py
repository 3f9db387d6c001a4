"""Posting encoded spans (telemetry/otlp_http.py): the OTEL_EXPORTER_OTLP_* settings reach a real receiver."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.telemetry.otlp_http import OtlpPoster, otlp_settings
from tests.harness import serve_asgi

pytestmark = pytest.mark.anyio

BODY = b"\x0a\x03spans" * 100


class Receiver:
    """Answers each POST with the next planned status; remembers what arrived."""

    def __init__(self, statuses: list[tuple[int, dict[str, str]]] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.posts: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, request: Request) -> Response:
        self.posts.append((request.url.path, dict(request.headers), await request.body()))
        status, headers = self.statuses.pop(0) if self.statuses else (200, {})
        return Response(b"", status_code=status, headers=headers, media_type="application/x-protobuf")


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    async with serve_asgi(app) as url:
        yield url


async def post(environ: dict[str, str], body: bytes = BODY) -> bool:
    poster = OtlpPoster(otlp_settings(environ))
    try:
        return await anyio.to_thread.run_sync(poster.post, body)
    finally:
        poster.close()


def test_the_traces_variables_win_over_the_generic_ones_and_the_generic_endpoint_gets_the_path() -> None:
    generic = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme,authorization=Basic%20YWJj",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    settings = otlp_settings(generic)
    assert settings.endpoint == "https://collector:4318/v1/traces"
    assert (settings.headers["x-tenant"], settings.headers["authorization"]) == ("acme", "Basic YWJj")
    assert (settings.timeout, settings.compression, settings.headers["content-encoding"]) == (3.0, "gzip", "gzip")
    specific = otlp_settings({
        **generic,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9/custom",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=other",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0.5",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none",
    })
    assert (specific.endpoint, specific.headers.get("x-tenant"), specific.timeout) == ("http://traces:9/custom", "other", 0.5)
    assert (specific.compression, "content-encoding" in specific.headers) == ("none", False)
    assert otlp_settings({}).endpoint == "http://localhost:4318/v1/traces"
    assert otlp_settings({"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli", "OTEL_EXPORTER_OTLP_TIMEOUT": "x"}).compression == "none"


@pytest.mark.parametrize(("compression", "decode"), [("gzip", gzip.decompress), ("deflate", zlib.decompress)])
async def test_headers_and_compression_from_the_environment_reach_the_receiver(compression: str, decode: object) -> None:
    receiver = Receiver()
    async with receiving(receiver) as url:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": url,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
            "OTEL_EXPORTER_OTLP_COMPRESSION": compression,
        }
        assert await post(env)
    [(path, headers, body)] = receiver.posts
    assert path == "/v1/traces"
    assert (headers["x-tenant"], headers["content-type"], headers["content-encoding"]) == ("acme", "application/x-protobuf", compression)
    assert callable(decode) and decode(body) == BODY


async def test_a_busy_receiver_is_retried_after_the_time_it_asks_for_and_a_refusal_is_not() -> None:
    receiver = Receiver([(503, {"retry-after": "0"}), (429, {"retry-after": "0"})])
    async with receiving(receiver) as url:
        assert await post({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces"})
        assert len(receiver.posts) == 3
        receiver.statuses = [(400, {})]
        assert not await post({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces"})
        assert len(receiver.posts) == 4


async def test_a_retry_that_would_outlast_the_timeout_is_not_made() -> None:
    receiver = Receiver([(503, {"retry-after": "30"})])
    async with receiving(receiver) as url:
        with anyio.fail_after(5):
            assert not await post({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces", "OTEL_EXPORTER_OTLP_TIMEOUT": "2"})
    assert len(receiver.posts) == 1
