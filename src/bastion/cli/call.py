"""`bastion tools call SERVER TOOL`: call a tool through a virtual server's MCP endpoint, as the
CLI's own credential (token or signed-in session), and print what it returned."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import click
import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from bastion.cli.errors import sole_exception
from bastion.cli.http import Api, api_command, fail, problem_of, seg
from bastion.cli.output import emit, message, terminal_text
from bastion.core.client_config import mcp_url


def _arguments(raw: str | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    """The call's arguments: a JSON object (`--args`, '-' reads stdin) plus `--arg KEY=VALUE` pairs,
    whose values are JSON when they parse as JSON and strings otherwise."""
    arguments: dict[str, Any] = {}
    if raw is not None:
        text = sys.stdin.read() if raw == "-" else raw
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON ({exc})", param_hint="--args") from None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--args")
        arguments.update(parsed)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--arg")
        try:
            arguments[key] = json.loads(value)
        except ValueError:
            arguments[key] = value
    try:
        json.dumps(arguments, allow_nan=False, ensure_ascii=False).encode()
    except ValueError as exc:  # NaN, Infinity or 1e400 (no JSON holds them), a lone surrogate (no UTF-8 does)
        raise click.BadParameter(f"cannot be sent as JSON ({exc})", param_hint="--args/--arg") from None
    return arguments


async def _call(
    api: Api, server: str, tool: str, arguments: dict[str, Any], refusals: list[httpx2.Response]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}

    async def keep_refusal(response: httpx2.Response) -> None:
        # The SDK turns an HTTP refusal into a bare JSON-RPC error: keep the gateway's own words.
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/problem+json"):
            await response.aread()
            refusals.append(response)

    timeout = httpx2.Timeout(30.0, read=None)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks={"response": [keep_refusal]}) as http:
        streams = streamable_http_client(mcp_url(api.url, server), http_client=http)
        async with Client(streams, mode="auto") as client:
            result = await client.call_tool(tool, arguments)
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def _print_result(result: dict[str, Any]) -> None:
    for block in result.get("content") or ():
        if block.get("type") == "text":
            text = str(block.get("text", ""))
            # The tool's own text, as it is, into a pipe or file; on a terminal, nothing it holds drives it.
            click.echo(terminal_text(text) if sys.stdout.isatty() else text)
        else:
            kind = block.get("type", "?")
            detail = block.get("mimeType") or (block.get("resource") or {}).get("uri") or ""
            message(f"[{kind} content{': ' + detail if detail else ''}]")
    structured = result.get("structuredContent")
    if structured is not None:
        emit(structured, as_json=True)


@click.command("call")
@click.argument("server")
@click.argument("tool")
@click.option("--args", "raw_args", default=None, metavar="JSON", help="Arguments as a JSON object ('-': stdin).")
@click.option("--arg", "pairs", multiple=True, metavar="KEY=VALUE", help="One argument (JSON value or string); repeatable.")
@api_command
def call(server: str, tool: str, raw_args: str | None, pairs: tuple[str, ...], api: Api) -> None:
    """Call TOOL (its name on virtual server SERVER) with JSON arguments; exit 1 if the tool failed."""
    arguments = _arguments(raw_args, pairs)
    for name in (server, tool):
        seg(name)  # UTF-8 text, or the command stops here saying which is not
    refusals: list[httpx2.Response] = []
    try:
        result = anyio.run(_call, api, server, tool, arguments, refusals)
    except BaseException as exc:
        inner = sole_exception(exc)
        if refusals and isinstance(inner, MCPError | httpx2.HTTPStatusError):
            title, detail = problem_of(refusals[-1])
            fail(f"{title}: {detail}" if detail else title, title=title, detail=detail, status=refusals[-1].status_code)
        if isinstance(inner, MCPError):
            fail(f"{inner.message} (MCP error {inner.code})", title="MCP error", detail=inner.message)
        if isinstance(inner, httpx2.HTTPStatusError):
            status = inner.response.status_code
            fail(f"the gateway answered HTTP {status} for virtual server {server!r}", status=status)
        if isinstance(inner, httpx2.InvalidURL):
            fail(f"invalid gateway URL {api.url!r}: {inner}")
        if isinstance(inner, httpx2.TransportError):
            fail(f"cannot reach the gateway at {api.url} ({type(inner).__name__}); is it running?")
        raise
    if api.as_json:
        emit(result, as_json=True)
    else:
        _print_result(result)
    if result.get("isError"):
        raise SystemExit(1)
