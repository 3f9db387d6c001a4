"""The composition root of `bastion wrap`: one stdio upstream served over Streamable HTTP.

The gateway's own parts (pool, discovery, snapshot, pipeline, MCP front) around an in-memory
catalog instead of a database: one upstream, one virtual server exposing its original names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from bastion import __version__
from bastion.app.network import outbound
from bastion.auth.tokens import TokenVerifier, hash_token
from bastion.config import Settings
from bastion.control.standalone import StandaloneCatalog
from bastion.core.models import Discovery, UpstreamSpec
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.build import build_pipeline
from bastion.store.memory_agent_tasks import MemoryAgentTaskHolders
from bastion.tasks import TaskRunner
from bastion.upstream.discovery import DiscoveryLimits
from bastion.upstream.pool import UpstreamPool
from bastion.web.mcp_endpoint import McpFront
from bastion.web.single import SingleServerApp


@dataclass
class Wrapped:
    """A running wrap: the ASGI app to serve and what the child offered at start."""

    catalog: StandaloneCatalog
    pool: UpstreamPool
    front: McpFront
    app: SingleServerApp
    discovery: Discovery


@asynccontextmanager
async def wrapping(settings: Settings, spec: UpstreamSpec, *, token: str | None) -> AsyncIterator[Wrapped]:
    """Start the child and everything in front of it; stop it all, the child included, on exit.

    Raises UpstreamUnavailable when the child cannot be started or does not speak MCP.
    """
    async with anyio.create_task_group() as tg:
        runner = TaskRunner(tg)
        catalog = StandaloneCatalog(spec, runner, server=spec.name)
        network = outbound(settings)
        pool = UpstreamPool(
            runner,
            agent_tasks=MemoryAgentTaskHolders(),  # one process: nothing to share
            agent_task_ttl=settings.agent_task_ttl,
            on_notification=catalog.upstream_changed,
            connect_timeout=settings.connect_timeout,
            outbound=network,
            backoff_base=settings.reconnect_backoff,
            limits=DiscoveryLimits(settings.upstream_max_items, settings.upstream_max_pages),
        )
        front: McpFront | None = None
        try:
            discovery = await catalog.start(pool)
            server_info: dict[str, Any] = {"name": "bastion", "version": __version__}
            authenticator = Authenticator(TokenVerifier(hash_token(token)) if token else None)
            pipeline = build_pipeline(
                catalog.current, pool, authenticator, timeout=settings.call_timeout, server_info=server_info
            )
            front = McpFront(pipeline, runner, catalog.current, settings.max_body_bytes)
            catalog.on_change(front.on_change)
            app = SingleServerApp(front, spec.name, authenticator, settings.allowed_origins)
            yield Wrapped(catalog, pool, front, app, discovery)
        finally:
            if front is not None:
                await front.aclose()
            await pool.aclose()
            await network.aclose()
            tg.cancel_scope.cancel()
