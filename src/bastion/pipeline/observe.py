"""Observe: time every request and log failures without their arguments (which may be secret)."""

from __future__ import annotations

import logging
import time

from bastion.core.errors import BastionError
from bastion.pipeline.base import Next, Result
from bastion.pipeline.context import CallContext

log = logging.getLogger("bastion.calls")


async def observe(ctx: CallContext, call_next: Next) -> Result:
    start = time.perf_counter()
    try:
        return await call_next(ctx)
    except BastionError as exc:
        log.info("%s %s on %s failed: %s", ctx.method, _target(ctx), ctx.server, exc.detail)
        raise
    finally:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s on %s took %.2f ms", ctx.method, _target(ctx), ctx.server, (time.perf_counter() - start) * 1e3)


def _target(ctx: CallContext) -> str:
    value = ctx.params.get("name") or ctx.params.get("uri") or ""
    return str(value)[:200]
