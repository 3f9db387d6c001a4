"""Dispatch: send the routed request to its upstream through the pool, within the deadline."""

from __future__ import annotations

from typing import Any

from bastion.core.ports import UpstreamCaller
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext


def dispatch_stage(pool: UpstreamCaller, timeout: float, server_info: dict[str, Any]) -> Stage:
    async def dispatch(ctx: CallContext, call_next: Next) -> Result:
        item = ctx.item
        assert item is not None and ctx.upstream_params is not None, "route runs before dispatch"
        principal = ctx.principal
        result = await pool.request(
            item.upstream,
            ctx.method,
            ctx.upstream_params,
            user=principal.id if principal is not None else None,
            timeout=timeout,
            hooks=ctx.hooks,
        )
        meta = result.get("_meta")
        if isinstance(meta, dict) and any(k.endswith("serverInfo") for k in meta):
            # The client talks to Bastion: never leak which server answered behind it.
            result["_meta"] = {k: (server_info if k.endswith("serverInfo") else v) for k, v in meta.items()}
        return result

    return dispatch
