"""The CLI given what it cannot use: each of these printed a Python traceback. Now each is one
`Error:` line and a nonzero exit: a name that is not UTF-8 (bytes from argv arrive as lone
surrogates), a JSON file holding NaN or a lone surrogate, a configuration file that is not UTF-8, a
port or host no socket takes, a gateway URL that does not parse, and a server whose answers are JSON
of another shape than Bastion's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bastion.cli.main import cli
from bastion.cli.serve import serve
from tests.harness import serve_asgi

NOT_UTF8 = b"\xff".decode("utf-8", "surrogateescape")  # what Python makes of the byte 0xFF in argv


def invoke(url: str, *args: str, stdin: str | None = None) -> Result:
    env = {"BASTION_URL": url, "BASTION_TOKEN": "t", "NO_PROXY": "127.0.0.1,localhost"}
    return CliRunner().invoke(cli, list(args), env=env, input=stdin)


def refused(result: Result, code: int = 1) -> None:
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an exception of its own
    assert "Error" in result.stderr, result.stderr


@pytest.fixture
async def garbage() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server answering every request with 200 and the first body of the list (JSON, not Bastion's)."""
    bodies: list[bytes] = [b"{}"]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await Response(bodies[0], media_type="application/json")(scope, receive, send)

    async with serve_asgi(app) as url:
        yield url, bodies


@pytest.mark.parametrize("args", [("upstreams", "show", NOT_UTF8), ("tokens", "revoke", NOT_UTF8),
                                  ("tokens", "create", NOT_UTF8, "--all-servers"), ("tools", "call", NOT_UTF8, "t")])
def test_a_name_that_is_not_utf8_is_refused(args: tuple[str, ...]) -> None:
    refused(invoke("http://127.0.0.1:9", *args))


@pytest.mark.parametrize("text", ['{"default": NaN}', '{"rules": [1e400]}', '{"default": "\\ud800"}'])
def test_a_policy_file_json_cannot_send_is_refused(tmp_path: Path, text: str) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(text)
    result = invoke("http://127.0.0.1:9", "servers", "create", "vs", "--policy", str(policy))
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Error" in result.stderr and "cannot reach" not in result.stderr, result.stderr


@pytest.mark.parametrize("args", [("--args", '{"a": NaN}'), ("--arg", "a=1e400"), ("--args", '{"a": "\\udcff"}')])
def test_tool_arguments_json_cannot_send_are_refused(args: tuple[str, ...]) -> None:
    result = invoke("http://127.0.0.1:9", "tools", "call", "s", "t", *args)
    assert result.exit_code == 2 and "cannot reach" not in result.stderr, (result.stderr, result.exception)


def test_tools_call_with_a_gateway_url_that_does_not_parse() -> None:
    refused(invoke("http://[::1", "tools", "call", "s", "t"))


def test_a_configuration_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    document = tmp_path / "bastion.yaml"
    document.write_bytes(b"\xff\xfe teams: []\n")
    result = invoke("http://127.0.0.1:9", "import", str(document))
    refused(result)
    assert "UTF-8" in result.stderr
    started = CliRunner().invoke(serve, ["--config", str(document)])
    assert started.exit_code == 1 and isinstance(started.exception, SystemExit), repr(started.exception)
    assert "UTF-8" in started.output


@pytest.mark.parametrize(("args", "code"), [(["--port", "99999"], 2), (["--port", "-1"], 2), (["--host", NOT_UTF8], 1)])
def test_serve_on_a_port_or_host_no_socket_takes(
    args: list[str], code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(serve, ["--port", "0", *args] if args[0] == "--host" else args)
    assert result.exit_code == code and isinstance(result.exception, SystemExit), (result.output, result.exception)


@pytest.mark.anyio
@pytest.mark.parametrize("body", [b"[]", b'"x"', b"5", b"null", b"{}", b'{"items": 5}', b'{"items": [1, null]}',
                                  b'{"items": [{"name": 5, "counts": 7, "exposed": 3, "members": 5}]}'])
async def test_a_server_answering_another_shape_is_an_error(garbage: tuple[str, list[bytes]], body: bytes) -> None:
    url, bodies = garbage
    bodies[0] = body
    commands = [("upstreams", "list"), ("upstreams", "connect", "x"), ("tools", "list"), ("approvals", "list"),
                ("servers", "list"), ("servers", "update", "x", "--add-tool", "a"), ("tokens", "list"),
                ("users", "list"), ("teams", "list"), ("teams", "show", "x"), ("audit", "list"), ("audit", "verify"),
                ("usage",), ("registry", "install", "s", "x"), ("registry", "search", "x")]
    for command in commands:
        result = await anyio.to_thread.run_sync(partial(invoke, url, *command))
        assert result.exception is None or isinstance(result.exception, SystemExit), (command, repr(result.exception))
        assert result.exit_code in (0, 1), (command, result.output)
