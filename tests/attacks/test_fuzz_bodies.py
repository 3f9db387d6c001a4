"""Fuzzing (issue 9, finding 13): generated JSON (deep nesting, huge integers, odd types, near-valid
objects) thrown at the REST write endpoints and at an MCP endpoint in both eras of one running
Bastion. Whatever the body, the answer is never a 5xx. Bounded and deterministic (derandomized)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.web.json_depth import loads
from tests.harness import TOKEN, serve, settings_for, stdio_fixture
from tests.identity import login, make_user

FIELDS = [
    "name", "transport", "url", "command", "args", "env", "headers", "auth", "isolation", "enabled", "team",
    "visibility", "description", "prefix", "tools", "prompts", "resources", "upstreams", "policy", "rate_limits",
    "servers", "permissions", "expires_in", "ip_allow", "email", "password", "role", "active", "members", "user",
]
# URLs that must be refused before any lookup (nothing leaves the machine).
URLS = ["http://127.0.0.1:1/mcp", "http://[::1/mcp", "http://xn--a.example/", f"http://{'a' * 64}.example/", "ftp://x", ""]

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
    | st.sampled_from(["stdio", "streamable-http", "sse", "*", "public", "admin", "mcp", "read", *URLS])
    | st.integers(min_value=10**18, max_value=10**20)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
objects = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)


def _deep(depth: int, opener: str) -> str:
    return ('{"a":' * depth + "1" + "}" * depth) if opener == "{" else ("[" * depth + "]" * depth)


raw = (
    st.builds(_deep, st.integers(min_value=1, max_value=4000), st.sampled_from(["[", "{"]))
    | st.integers(min_value=4200, max_value=6000).map(lambda n: '{"name": ' + "9" * n + "}")
    | st.text(max_size=50)
)
bodies = st.one_of(objects.map(json.dumps), values.map(json.dumps), raw)

METHODS = ["initialize", "tools/list", "tools/call", "resources/read", "prompts/get", "completion/complete", "ping", "server/discover"]
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
params = st.fixed_dictionaries(
    {},
    optional={
        "_meta": st.just(META) | values,
        "name": st.sampled_from(["fx__echo", "fx__add", "fx__fail", "fx__greet"]) | values,
        "arguments": st.dictionaries(st.sampled_from(["text", "a", "b", "message", "name"]), values, max_size=3) | values,
        "uri": st.sampled_from(["fixture://static", "fixture://items/1"]) | values,
        "cursor": values,
        "ref": values,
        "argument": values,
    },
)
rpc = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"]), "id": values, "method": st.sampled_from(METHODS)},
    optional={"params": params | values},
)


@dataclass
class Target:
    base: str
    dev: str


pytestmark = pytest.mark.database_free


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One Bastion on loopback in a thread of its own, so hypothesis drives it with a plain client."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    ready, stop, failed = threading.Event(), threading.Event(), []
    found: dict[str, Any] = {}

    async def run() -> None:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", allow_private_upstreams=False)) as gateway:
            await gateway.register(stdio_fixture("fx"))
            await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
            await make_user(gateway, "dev@example.com", "developer", "team-a")
            found["dev"] = (await login(gateway, "dev@example.com")).json()["token"]
            found["base"] = gateway.base_url
            ready.set()
            while not stop.is_set():
                await anyio.sleep(0.05)

    def thread() -> None:
        try:
            anyio.run(run)
        except BaseException as exc:
            failed.append(exc)
            ready.set()

    worker = threading.Thread(target=thread, name="fuzz-bastion", daemon=True)
    worker.start()
    assert ready.wait(120), "Bastion did not start"
    assert not failed, failed
    try:
        yield Target(found["base"], found["dev"])
    finally:
        stop.set()
        worker.join(60)


WRITES = [
    ("POST", "/api/v1/upstreams", "dev"),
    ("PATCH", "/api/v1/upstreams/fx", "admin"),
    ("POST", "/api/v1/servers", "admin"),
    ("PATCH", "/api/v1/servers/vs", "admin"),
    ("POST", "/api/v1/tokens", "admin"),
    ("POST", "/api/v1/users", "admin"),
    ("POST", "/api/v1/teams", "admin"),
    ("PATCH", "/api/v1/tools/fx__echo", "admin"),
    ("POST", "/api/v1/auth/login", None),
]
FUZZ = settings(max_examples=75, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


def _no_5xx(response: httpx2.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text


@FUZZ
@given(write=st.sampled_from(WRITES), body=bodies)
def test_rest_writes_never_answer_5xx(target: Target, write: tuple[str, str, str | None], body: str) -> None:
    method, path, who = write
    if path == "/api/v1/upstreams/fx" and ('"transport"' in body or '"command"' in body):
        path = "/api/v1/upstreams/nothing-here"  # the admin's PATCH must not start random programs
    headers = {"content-type": "application/json"}
    if who is not None:
        headers["authorization"] = f"Bearer {TOKEN if who == 'admin' else target.dev}"
    with httpx2.Client(base_url=target.base, timeout=60) as http:
        _no_5xx(http.request(method, path, content=body.encode("utf-8", "surrogatepass"), headers=headers))


@FUZZ
@given(era=st.sampled_from(["legacy", "modern"]), message=st.one_of(rpc.map(json.dumps), bodies))
def test_mcp_endpoint_never_answers_5xx(target: Target, era: str, message: str) -> None:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {TOKEN}",
    }
    if era == "modern":
        try:
            parsed = loads(message)
            method, sent = parsed.get("method"), parsed.get("params")
        except (ValueError, RecursionError, AttributeError):
            method, sent = None, None
        headers |= {"mcp-protocol-version": "2026-07-28", "mcp-method": method if isinstance(method, str) else "tools/list"}
        named = sent.get("uri" if method == "resources/read" else "name") if isinstance(sent, dict) else None
        if isinstance(named, str) and named.isascii() and named.isprintable():
            headers["mcp-name"] = named  # so the call gets past the routing-header check to the upstream
    with httpx2.Client(timeout=60) as http:
        _no_5xx(http.post(f"{target.base}/servers/vs/mcp", content=message.encode("utf-8", "surrogatepass"), headers=headers))
