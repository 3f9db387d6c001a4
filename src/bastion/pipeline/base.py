"""A stage is `async (ctx, call_next) -> result`; a chain runs them in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bastion.pipeline.context import CallContext

Result = dict[str, Any]
Next = Callable[[CallContext], Awaitable[Result]]
Stage = Callable[[CallContext, Next], Awaitable[Result]]


def chain(stages: Sequence[Stage]) -> Next:
    """Compose stages outermost-first into one callable; the last stage must not call next."""

    async def end(ctx: CallContext) -> Result:
        raise RuntimeError(f"pipeline fell through for {ctx.method}")

    call: Next = end
    for stage in reversed(stages):
        call = _bind(stage, call)
    return call


def _bind(stage: Stage, call_next: Next) -> Next:
    async def run(ctx: CallContext) -> Result:
        return await stage(ctx, call_next)

    return run
