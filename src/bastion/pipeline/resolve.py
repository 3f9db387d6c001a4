"""Resolve: find the virtual server the request names, in the current in-memory snapshot."""

from __future__ import annotations

from collections.abc import Callable

from bastion.core.errors import NotFound
from bastion.core.snapshot import Snapshot
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext


def resolve_stage(snapshot: Callable[[], Snapshot]) -> Stage:
    async def resolve(ctx: CallContext, call_next: Next) -> Result:
        view = snapshot().servers.get(ctx.server)
        if view is None:
            raise NotFound(f"virtual server {ctx.server!r} does not exist")
        ctx.view = view
        return await call_next(ctx)

    return resolve
