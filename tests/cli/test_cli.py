"""CLI tests against a real loopback HTTP stub of the gateway's REST API."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.cli.catalog import tools
from bastion.cli.main import cli
from bastion.cli.servers import servers
from bastion.cli.upstreams import upstreams

TOKEN = "s3cret-token-value"
UPSTREAM = {
    "name": "files",
    "transport": "stdio",
    "status": "connected",
    "counts": {"tools": 2, "prompts": 1, "resources": 0},
    "last_seen": "2025-01-01T00:00:00Z",
}
TOOLS = [
    {"name": "files__read", "upstream": "files", "original_name": "read", "description": "Read a file " * 10, "enabled": True},
    {"name": "files__write", "upstream": "files", "original_name": "write", "description": "Write", "enabled": False},
]
SERVER = {"name": "dev", "prefix": "always", "exposed": {"tools": ["files__read"]}, "url": "http://gw/servers/dev/mcp"}


def problem(status: int, title: str, detail: str) -> JSONResponse:
    """A problem+json reply as the gateway sends it."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@dataclass
class Stub:
    """The running stub: its base URL and what it received."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def last(self) -> dict[str, Any]:
        """The most recent request."""
        return self.requests[-1]


def build_app(stub_requests: list[dict[str, Any]]) -> Starlette:
    """A Starlette app implementing just enough of /api/v1."""

    async def record(request: Request) -> Any:
        body = await request.body()
        payload = json.loads(body) if body else None
        stub_requests.append(
            {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "path": request.url.path,
                "query": dict(request.query_params),
                "authorization": request.headers.get("authorization"),
                "json": payload,
            }
        )
        return payload

    async def upstream_collection(request: Request) -> Response:
        payload = await record(request)
        if request.method == "GET":
            return JSONResponse({"items": [UPSTREAM, {**UPSTREAM, "name": "weather", "counts": {"tools": 5}}]})
        if payload["name"] == "dup":
            return problem(409, "Conflict", "upstream 'dup' already exists")
        return JSONResponse({**payload, "status": "connected", "counts": UPSTREAM["counts"]}, status_code=201)

    async def upstream_item(request: Request) -> Response:
        await record(request)
        name = request.path_params["name"]
        if name != "files":
            return problem(404, "Not Found", f"no upstream named {name!r}")
        if request.method == "DELETE":
            return Response(status_code=204)
        return JSONResponse(UPSTREAM)

    async def upstream_refresh(request: Request) -> Response:
        await record(request)
        return JSONResponse({**UPSTREAM, "counts": {"tools": 3, "prompts": 0, "resources": 1}})

    async def tool_collection(request: Request) -> Response:
        await record(request)
        return JSONResponse({"items": TOOLS})

    async def tool_item(request: Request) -> Response:
        payload = await record(request)
        return JSONResponse({**TOOLS[0], "name": request.path_params["name"], **payload})

    async def server_collection(request: Request) -> Response:
        payload = await record(request)
        if request.method == "GET":
            return JSONResponse({"items": [SERVER]})
        return JSONResponse({**SERVER, **payload, "url": f"http://gw/servers/{payload['name']}/mcp"}, status_code=201)

    async def server_item(request: Request) -> Response:
        await record(request)
        if request.method == "DELETE":
            return Response(status_code=204)
        return JSONResponse(SERVER)

    return Starlette(
        routes=[
            Route("/api/v1/upstreams", upstream_collection, methods=["GET", "POST"]),
            Route("/api/v1/upstreams/{name}/refresh", upstream_refresh, methods=["POST"]),
            Route("/api/v1/upstreams/{name}", upstream_item, methods=["GET", "DELETE"]),
            Route("/api/v1/tools", tool_collection, methods=["GET"]),
            Route("/api/v1/tools/{name:path}", tool_item, methods=["PATCH"]),
            Route("/api/v1/servers", server_collection, methods=["GET", "POST"]),
            Route("/api/v1/servers/{name}", server_item, methods=["GET", "DELETE"]),
        ]
    )


@pytest.fixture
def stub() -> Iterator[Stub]:
    """Run the stub gateway with uvicorn on an ephemeral loopback port."""
    received: list[dict[str, Any]] = []
    config = uvicorn.Config(build_app(received), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    tick = threading.Event()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "stub server did not start"
        tick.wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Stub(url=f"http://127.0.0.1:{port}", requests=received)
    server.should_exit = True
    thread.join(timeout=10)


def run(stub_or_url: Stub | str, *args: str, token: str | None = TOKEN) -> Result:
    """Invoke the root CLI with the gateway URL/token supplied through the environment."""
    url = stub_or_url.url if isinstance(stub_or_url, Stub) else stub_or_url
    env = {"BASTION_URL": url, "BASTION_TOKEN": token, "NO_PROXY": "127.0.0.1,localhost"}
    return CliRunner().invoke(cli, list(args), env=env)


def assert_clean(result: Result) -> None:
    """No traceback and no token anywhere in the output."""
    combined = result.stdout + result.stderr
    assert "Traceback" not in combined
    assert TOKEN not in combined


def test_token_sent_as_bearer_and_never_printed(stub: Stub) -> None:
    result = run(stub, "upstreams", "list")
    assert result.exit_code == 0, result.stderr
    assert stub.last()["authorization"] == f"Bearer {TOKEN}"
    assert_clean(result)


@pytest.mark.parametrize("token", ["jeton-é", "two\nlines", "tab\there"], ids=["non-ascii", "newline", "tab"])
@pytest.mark.parametrize("command", [("upstreams", "list"), ("tools", "call", "dev", "files__read")], ids=["rest", "mcp"])
def test_a_token_that_cannot_go_in_a_header_is_a_clear_error(stub: Stub, token: str, command: tuple[str, ...]) -> None:
    result = run(stub, *command, token=token)
    assert result.exit_code == 1, result.output
    assert "token" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert token not in result.stderr
    assert not stub.requests


def test_options_on_group_override_env(stub: Stub) -> None:
    result = CliRunner().invoke(
        upstreams, ["--url", stub.url, "--token", "other", "list"], env={"BASTION_URL": "http://127.0.0.1:9"}
    )
    assert result.exit_code == 0, result.stderr
    assert stub.last()["authorization"] == "Bearer other"
    assert "other" not in result.stdout


def test_no_token_sends_no_authorization(stub: Stub) -> None:
    result = run(stub, "tools", "list", token=None)
    assert result.exit_code == 0
    assert stub.last()["authorization"] is None


def test_upstreams_list_table_and_json(stub: Stub) -> None:
    table = run(stub, "upstreams", "list")
    assert table.exit_code == 0
    assert "files" in table.stdout and "weather" in table.stdout and "connected" in table.stdout
    as_json = run(stub, "upstreams", "list", "--json")
    assert json.loads(as_json.stdout)["items"][1]["name"] == "weather"


def test_upstreams_add_with_trailing_command(stub: Stub) -> None:
    args = ["upstreams", "add", "files", "--transport", "stdio", "--env", "A=1=2", "--isolation", "per_user"]
    result = run(stub, *args, "--json", "--", "python", "-m", "x", "--flag")
    assert result.exit_code == 0, result.stderr
    sent = stub.last()
    assert sent["method"] == "POST" and sent["path"] == "/api/v1/upstreams"
    assert sent["json"] == {
        "name": "files",
        "transport": "stdio",
        "command": "python",
        "args": ["-m", "x", "--flag"],
        "env": {"A": "1=2"},
        "isolation": "per_user",
    }
    assert json.loads(result.stdout)["counts"]["tools"] == 2


def test_upstreams_add_http_omits_unset_and_prints_counts(stub: Stub) -> None:
    args = ["add", "web", "--transport", "streamable-http", "--url", "https://up/mcp", "--header", "X-Key=v"]
    result = CliRunner().invoke(upstreams, ["--url", stub.url, *args])
    assert result.exit_code == 0, result.stderr
    assert stub.last()["json"] == {
        "name": "web",
        "transport": "streamable-http",
        "url": "https://up/mcp",
        "headers": {"X-Key": "v"},
    }
    assert "web" in result.stdout and "2 tools" in result.stdout


@pytest.mark.parametrize("flag", ["--env", "--header"])
def test_pair_without_equals_is_usage_error(stub: Stub, flag: str) -> None:
    result = run(stub, "upstreams", "add", "x", "--transport", "stdio", flag, "NOEQUALS", "--", "cmd")
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr and "NOEQUALS" not in result.stderr
    assert stub.requests == []


def test_stdio_without_command_is_usage_error(stub: Stub) -> None:
    result = run(stub, "upstreams", "add", "x", "--transport", "stdio")
    assert result.exit_code == 2
    assert stub.requests == []


def test_problem_json_error(stub: Stub) -> None:
    result = run(stub, "upstreams", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Not Found: no upstream named 'nope'")
    assert result.stdout == ""
    assert_clean(result)
    conflict = run(stub, "upstreams", "add", "dup", "--transport", "sse", "--url", "http://u/sse")
    assert conflict.exit_code == 1 and "Error: Conflict: upstream 'dup' already exists" in conflict.stderr


def test_unreachable_gateway(stub: Stub) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = run(closed, "upstreams", "list")
    assert result.exit_code == 1
    assert "Error:" in result.stderr and closed in result.stderr
    assert_clean(result)


def test_upstreams_remove_show_refresh(stub: Stub) -> None:
    removed = run(stub, "upstreams", "remove", "files", "--force")
    assert removed.exit_code == 0 and "Removed files" in removed.stdout
    assert stub.last()["method"] == "DELETE" and stub.last()["query"] == {"force": "true"}
    shown = run(stub, "upstreams", "show", "files")
    assert "files" in shown.stdout and "tools=2" in shown.stdout
    refreshed = run(stub, "upstreams", "refresh", "files")
    assert refreshed.exit_code == 0 and "3 tools" in refreshed.stdout
    assert stub.last()["path"] == "/api/v1/upstreams/files/refresh"


def test_tools_list_filters_and_truncates(stub: Stub) -> None:
    result = run(stub, "tools", "list", "--search", "read file", "--upstream", "files")
    assert result.exit_code == 0
    assert stub.last()["query"] == {"q": "read file", "upstream": "files"}
    assert "files__read" in result.stdout and "files__write" in result.stdout
    assert ("Read a file " * 10).strip() not in result.stdout


def test_tools_enable_disable_url_encodes(stub: Stub) -> None:
    enabled = run(stub, "tools", "enable", "odd name/x")
    assert enabled.exit_code == 0 and "Enabled odd name/x" in enabled.stdout
    assert stub.last()["raw_path"] == "/api/v1/tools/odd%20name%2Fx"
    assert stub.last()["json"] == {"enabled": True}
    disabled = CliRunner().invoke(tools, ["--url", stub.url, "disable", "files__read", "--json"])
    assert json.loads(disabled.stdout)["enabled"] is False
    assert stub.last()["json"] == {"enabled": False}


def test_servers_commands(stub: Stub) -> None:
    args = ["--url", stub.url, "create", "dev", "--tool", "files__read", "--tool", "files__write", "--prefix", "never"]
    created = CliRunner().invoke(servers, args)
    assert created.exit_code == 0, created.stderr
    assert stub.last()["json"] == {"name": "dev", "tools": ["files__read", "files__write"], "prefix": "never"}
    assert "http://gw/servers/dev/mcp" in created.stdout
    listed = CliRunner().invoke(servers, ["--url", stub.url, "list"])
    assert "dev" in listed.stdout and "always" in listed.stdout
    assert json.loads(CliRunner().invoke(servers, ["--url", stub.url, "show", "dev", "--json"]).stdout)["name"] == "dev"
    removed = CliRunner().invoke(servers, ["--url", stub.url, "remove", "dev"])
    assert "Removed dev" in removed.stdout and stub.last()["method"] == "DELETE"


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "bastion" in result.stdout
