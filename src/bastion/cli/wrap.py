"""`bastion wrap -- CMD ARGS...`: serve a stdio MCP server over Streamable HTTP, no database.

Prints `READY http://HOST:PORT/mcp` on stdout once listening; Ctrl-C or SIGTERM stops the child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator

import anyio
import click
import uvicorn

from bastion.cli.errors import sole_exception
from bastion.config import Settings
from bastion.core.errors import BadRequest, UpstreamUnavailable
from bastion.core.models import UpstreamSpec
from bastion.core.naming import check_slug
from bastion.telemetry.logging import configure_logging
from bastion.web.hosts import allowed_hosts
from bastion.web.listen import listening_socket
from bastion.web.single import MCP_PATH
from bastion.web.slow_clients import bounded_http
from bastion.wrap import Wrapped, wrapping

LOOPBACK = "127.0.0.1"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class _Server(uvicorn.Server):
    """uvicorn that reports when it listens and leaves signals to us (the child must stop first)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def child_environment(named: tuple[str, ...]) -> dict[str, str]:
    """What the child gets besides the SDK's minimal environment (HOME, LOGNAME, PATH, SHELL, TERM,
    USER): only the variables named with --env, as NAME (copied from ours) or NAME=VALUE. Never
    Bastion's own settings, and never the rest of our environment (cloud keys, tokens)."""
    env: dict[str, str] = {}
    for entry in named:
        name, sep, value = entry.partition("=")
        if not name or name.upper().startswith("BASTION_"):
            raise click.BadParameter(f"{name or entry!r}: give a variable name (not one of Bastion's own)", param_hint="--env")
        if not sep:
            if name not in os.environ:
                raise click.BadParameter(f"{name} is not set in this environment", param_hint="--env")
            value = os.environ[name]
        env[name] = value
    return env


def access_note(host: str, token: str | None) -> str:
    if token:
        return "clients must send 'Authorization: Bearer <token>'"
    if host in _LOOPBACK_HOSTS:
        return "no token: loopback only, so any local process can use it (set --token to require one)"
    return f"WARNING: no token and bound to {host}: anyone who can reach this address can use it"


async def _stop_on_signals(server: _Server, wrapped: Wrapped) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if server.should_exit:
                server.force_exit = True  # a second Ctrl-C: stop waiting for open connections
            server.should_exit = True
            await wrapped.front.aclose()  # ends legacy clients' open streams, so shutdown need not wait


async def _announce(server: _Server, wrapped: Wrapped, url: str, note: str) -> None:
    """Once listening: one human line on stderr, the READY line on stdout."""
    await server.ready.wait()
    spec = wrapped.catalog.spec
    tools = sum(1 for item in wrapped.discovery.items if item.kind == "tool")
    click.echo(f"bastion wrap: {' '.join((spec.command or '', *spec.args))} ({tools} tools) at {url}; {note}", err=True)
    click.echo(f"READY {url}")
    sys.stdout.flush()


async def _serve(settings: Settings, spec: UpstreamSpec, host: str, port: int, token: str | None) -> None:
    try:
        sock = listening_socket(host, port)  # before the child starts: a busy port fails fast
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}{MCP_PATH}"
    with sock:
        async with wrapping(settings, spec, token=token) as wrapped:
            if host in _LOOPBACK_HOSTS or settings.allowed_hosts:
                # A loopback server is what DNS rebinding reaches from a browser: serve only its own names.
                wrapped.app.hosts = allowed_hosts(settings.public_url, host, settings.allowed_hosts)
            await _serve_wrapped(wrapped, sock, url, access_note(host, token), settings)


async def _serve_wrapped(wrapped: Wrapped, sock: socket.socket, url: str, note: str, settings: Settings) -> None:
    """Serve until a signal; then stop taking requests, and let `wrapping` stop the child."""
    config = uvicorn.Config(
        wrapped.app,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=5,
        http=bounded_http(settings.header_timeout, settings.body_timeout),
        # As `bastion serve`: X-Forwarded-For is read only from BASTION_TRUSTED_PROXIES (uvicorn's default
        # trusts 127.0.0.1, so any local client could name another address in the logs).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )
    server = _Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signals, server, wrapped)
        tg.start_soon(_announce, server, wrapped, url, note)
        await server.serve([sock])
        tg.cancel_scope.cancel()


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--host", default=None, help=f"Address to bind (default {LOOPBACK}).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port; 0 picks a free one.")
@click.option("--name", default="wrapped", show_default=True, help="Name of the wrapped server (a slug), for logs.")
@click.option("--token", envvar="BASTION_WRAP_TOKEN", show_envvar=True, default=None, help="Require this bearer token.")
@click.option(
    "--env",
    "env_names",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Pass this variable to the child (repeatable); it gets only these and a minimal environment.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
def wrap(
    host: str | None, port: int, name: str, token: str | None, env_names: tuple[str, ...], command: tuple[str, ...]
) -> None:
    """Serve a stdio MCP server over Streamable HTTP (2026-07-28 and 2025-11-25) at /mcp."""
    try:
        check_slug(name, "server")
    except BadRequest as exc:
        raise click.BadParameter(exc.detail, param_hint="--name") from None
    settings = Settings()
    configure_logging(settings.log_level)
    spec = UpstreamSpec(
        name=name, transport="stdio", command=command[0], args=tuple(command[1:]), env=child_environment(env_names)
    )
    try:
        anyio.run(_serve, settings, spec, host or LOOPBACK, port, token or None)
    except BaseException as exc:
        inner = sole_exception(exc)
        if isinstance(inner, UpstreamUnavailable):
            raise click.ClickException(inner.detail) from None
        if isinstance(inner, click.ClickException):
            raise inner from None
        raise
