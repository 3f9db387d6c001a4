"""`bastion serve`: run the gateway (optionally with the demo upstream and virtual server)."""

from __future__ import annotations

import gc
import json
import logging
import math
import sys
from functools import partial
from typing import Any

import click
import uvicorn

from bastion.app import Bastion, LifespanApp, load_keys
from bastion.app.config_file import apply_config_file, read_config_file, watch_config_file
from bastion.config import Settings
from bastion.core.errors import BastionError, Conflict
from bastion.core.models import UpstreamSpec, VirtualServerSpec
from bastion.telemetry.logging import configure_logging
from bastion.web.listen import listening_socket
from bastion.web.slow_clients import bounded_http

DEMO_UPSTREAM = "demo"
DEMO_SERVER = "demo"
log = logging.getLogger("bastion.config")


YOUNG_COLLECTION = 10_000
"""New container objects (net of those freed) between two young-generation collections (CPython's
default is 700)."""


def settle_heap() -> None:
    """Once started, move what starting made (the SDK, SQLAlchemy, the catalog: some 200,000
    objects) out of the cyclic garbage collector's sight. They live as long as the process, yet every
    full collection walked them all again, stopping every thread for tens of milliseconds (hundreds
    with a large catalog). A cycle among them that later becomes garbage is not reclaimed; startup
    leaves none worth the walk.

    Then collect the young generation less often. A request's objects are freed by reference
    counting when it ends, but observed calls are held a moment for their batch (`CallBatch`: up to
    0.1 s of calls with their arguments and results): at 700, that alone set off a young collection
    every ~20 calls, each walking the held calls again (~4 us a call, 15 ms of 4,000 calls; with
    observation off, 9 collections in all). At 10,000 the batch is told and freed first. Cyclic
    garbage waits for at most that many new objects (a few MB) before it is collected."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, older, oldest)


async def install_demo(bastion: Bastion) -> None:
    """Register the shipped demo upstream and a `demo` virtual server, once; print how to connect."""
    gateway = bastion.gateway
    if DEMO_UPSTREAM not in gateway.snapshot.upstreams:
        spec = UpstreamSpec(
            name=DEMO_UPSTREAM,
            transport="stdio",
            command=sys.executable,
            args=("-m", "bastion.demo.server"),
            visibility="public",
        )
        await gateway.register_upstream(spec, approve_as="bastion demo")
    if DEMO_SERVER not in gateway.snapshot.servers:
        try:
            await gateway.save_server(
                VirtualServerSpec(
                    name=DEMO_SERVER,
                    description="Bastion's demo tools",
                    upstreams=(DEMO_UPSTREAM,),
                    visibility="public",
                ),
                create=True,
            )
        except Conflict:
            pass
    url = f"{bastion.settings.base_url}/servers/{DEMO_SERVER}/mcp"
    token = bastion.generated_token or "<your admin token: it was printed on first start, or set BASTION_ADMIN_TOKEN>"
    snippet = {"mcpServers": {"bastion-demo": {"type": "http", "url": url, "headers": {"Authorization": f"Bearer {token}"}}}}
    click.echo(f"\nBastion demo is ready.\n  MCP URL: {url}\n  Token:   {token}\n\nClient config:\n{json.dumps(snippet, indent=2)}\n")


async def announce_token(bastion: Bastion) -> None:
    if bastion.generated_token:
        click.echo(
            f"\nGenerated admin token (shown once; only its hash is stored):\n  {bastion.generated_token}\n"
            f"Use it as 'Authorization: Bearer <token>', or export BASTION_TOKEN for the CLI.\n"
        )


class Seconds(click.FloatRange):
    """A number of seconds within bounds; nan too is refused (it compares false with both bounds)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        seconds: float = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value} is not a number of seconds in the range {self.min:g}<=x<={self.max:g}.", param, ctx)
        return seconds


POLL_SECONDS = Seconds(min=0.1, max=86400)
"""--config-poll: 0 or less checked the file on every event-loop turn (a busy core), inf never."""


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1, env BASTION_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on (default 4444, env BASTION_PORT).")
@click.option("--demo", is_flag=True, help="Also register the demo upstream and a 'demo' virtual server.")
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), default=None,
    help="A configuration document (bastion export) to apply on start, on SIGHUP and when it changes.",
)
@click.option("--prune", is_flag=True, help="With --config: also delete what the file does not list.")
@click.option(
    "--config-poll", type=POLL_SECONDS, default=5.0, show_default=True, help="With --config: seconds between checks of the file."
)
def serve(host: str | None, port: int | None, demo: bool, config_file: str | None, prune: bool, config_poll: float) -> None:
    """Run the Bastion gateway."""
    overrides: dict[str, object] = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if demo:
        overrides["allow_private_upstreams"] = True  # the demo is for trying local servers
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level, settings.log_format)
    try:
        load_keys(settings)  # refuse before binding, with the reason rather than a failed lifespan
    except ValueError as exc:  # KeyConfigError, VaultConfigError, RootKeyError: which setting is missing or bad
        raise click.ClickException(str(exc)) from None
    if config_file is not None:
        try:
            read_config_file(config_file)  # a file that is wrong stops here, before anything starts
        except BastionError as exc:
            raise click.ClickException(exc.detail) from None

    async def started(bastion: Bastion) -> None:
        if config_file is not None:
            try:
                await apply_config_file(bastion, config_file, prune=prune)
            except BastionError as exc:
                log.error("configuration file %s not applied, not starting: %s", config_file, exc.detail)
                raise
            bastion.gateway.runner.spawn("config-file", partial(watch_config_file, prune=prune, interval=config_poll), bastion, config_file)
        if demo:
            await install_demo(bastion)
        else:
            await announce_token(bastion)
        settle_heap()

    app = LifespanApp(settings, on_started=started)
    # On SIGTERM uvicorn stops accepting, lets in-flight calls finish for up to the grace period, then
    # closes what is left (open streams included, so their clients reconnect elsewhere) and exits.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_level="warning",
        http=bounded_http(settings.header_timeout, settings.body_timeout),
        timeout_graceful_shutdown=int(settings.shutdown_grace),
        # Client addresses feed ip_allow: believe X-Forwarded-For only from configured proxies.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    except (OverflowError, TypeError) as exc:  # a port past 65535 or a host name no encoding takes (from the environment)
        raise click.ClickException(f"cannot listen on {settings.host!r}:{settings.port}: {exc}") from None
    click.echo(f"Bastion {settings.base_url} (database {settings.database_url.split('://')[0]})")
    uvicorn.Server(config).run(sockets=[sock])
