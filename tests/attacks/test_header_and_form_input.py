"""Attack class: headers and forms no client of ours sends. A Last-Event-ID whose cursor Python calls
a digit but `int` cannot read (`²`, one latin-1 byte; or 5,000 ASCII digits), or that Redis cannot
take as a stream entry id (past 64 bits), made the event store raise while replaying: the SDK
logged a stack trace for each such GET. A cursor that cannot be one of ours finds nothing, as an
unknown cursor does. A form Starlette will not read, posted to the authorization server, is the
client's invalid_request in RFC 6749's JSON, not a logged unexpected error."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.auth.oauth_client import serve_public
from tests.harness import Running, open_raw_session, serve, session_headers, settings_for, stdio_fixture
from tests.replicas.cluster import REDIS_URL

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["memory", "redis"])
async def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """Bastion with its in-process event store, and with the Redis one replicas share."""
    tmp: Path = tmp_path_factory.mktemp("header-input")
    shared = {"redis_url": REDIS_URL, "redis_prefix": f"bastion-test-{uuid.uuid4().hex[:10]}"}
    settings = settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", **(shared if request.param == "redis" else {}))
    async with serve(settings) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"]})
        yield running


async def _replayed(http: httpx2.AsyncClient, url: str, session_id: str, last_event_id: bytes) -> tuple[int, bytes]:
    """The status and body of a resuming GET (the stream ends once the stored events are sent)."""
    headers = {k.lower().encode(): v.encode() for k, v in session_headers(session_id).items()}
    headers[b"accept"] = b"text/event-stream"
    headers[b"last-event-id"] = last_event_id
    async with http.stream("GET", url, headers=list(headers.items())) as response:
        return response.status_code, await response.aread()


@pytest.mark.parametrize(
    "cursor",
    [b"\xb2", b"1" * 5000, b"\xb2-0", b"1-\xb2", b"9" * 25 + b"-0", b"18446744073709551615-18446744073709551615"],
    ids=["superscript", "5000-digits", "redis-superscript-ms", "redis-superscript-seq", "redis-past-64-bits", "redis-last-id"],
)
async def test_a_last_event_id_that_cannot_be_a_cursor_finds_nothing(
    gateway: Running, cursor: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    url = gateway.mcp_url("vs")
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_raw_session(http, url)
        call = {"name": "fx__progress", "arguments": {"steps": 1}, "_meta": {"progressToken": "p"}}
        answered = await http.post(
            url, headers=session_headers(session_id), json={"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": call}
        )
        assert answered.status_code == 200 and answered.headers["content-type"].startswith("text/event-stream"), answered.text
        first = re.search(r"^id: (\S+)", answered.text, re.MULTILINE)
        assert first is not None, answered.text
        stream = first.group(1).rpartition("/")[0].encode()
        caplog.clear()
        caplog.set_level(logging.ERROR)
        replayed = await _replayed(http, url, session_id, stream + b"/" + cursor)
        unknown = await _replayed(http, url, session_id, b"no-such-stream/" + cursor)
    assert replayed == unknown, (replayed, unknown)
    failed = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failed, failed


@pytest.fixture(scope="module")
async def public(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """Bastion as its own authorization server, at the public URL it is reached on."""
    tmp: Path = tmp_path_factory.mktemp("form-input")
    async with serve_public(f"sqlite+aiosqlite:///{tmp}/b.db") as running:
        yield running


UNREADABLE_FORMS = {
    "1001-fields": (b"application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(1001))),
    "field-past-1-mb": (b"application/x-www-form-urlencoded", b"client_id=" + b"a" * (1024 * 1024 + 1)),
    "multipart-without-boundary": (b"multipart/form-data", b"--x\r\n"),
}


@pytest.mark.parametrize("path", ["/authorize", "/token", "/revoke"])
@pytest.mark.parametrize("form", sorted(UNREADABLE_FORMS))
async def test_a_form_that_cannot_be_read_is_an_oauth_invalid_request(
    public: Running, path: str, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette refuses these forms with an HTTPException; the SDK's /authorize caught it as an
    unexpected error (a stack trace in the log, `server_error` to the client), and /token and
    /revoke answered in plain text where RFC 6749 wants a JSON error."""
    content_type, body = UNREADABLE_FORMS[form]
    caplog.set_level(logging.ERROR)
    async with httpx2.AsyncClient(base_url=public.base_url, timeout=30) as http:
        response = await http.post(path, content=body, headers={"content-type": content_type.decode()})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert response.json()["error"] == "invalid_request", response.text
    failed = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failed, failed
