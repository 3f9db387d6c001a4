"""Rate limit: count the call against its token's, user's, server's and tool's limits, or refuse it."""

from __future__ import annotations

from bastion.core.errors import RateLimited
from bastion.core.ports import RateLimiter
from bastion.core.ratelimit import Defaults, counters_for
from bastion.pipeline.base import Next, Result, Stage
from bastion.pipeline.context import CallContext, Principal


def _token_id(principal: Principal) -> str | None:
    if principal.token is not None:
        return principal.token
    return principal.id.removeprefix("token:") if principal.kind == "token" else None


def ratelimit_stage(limiter: RateLimiter, defaults: Defaults) -> Stage:
    async def ratelimit(ctx: CallContext, call_next: Next) -> Result:
        principal, view = ctx.principal, ctx.view
        assert principal is not None and view is not None, "runs after authenticate and resolve"
        name = ctx.params.get("name")
        tool = name if ctx.method == "tools/call" and isinstance(name, str) else None
        token = _token_id(principal)
        own = view.spec.rate_limits
        counters = counters_for(ctx.server, ctx.method, tool, principal.id, principal.user, token, defaults, own)
        if counters:
            refused = await limiter.hit([(c.key, c.rate.count, c.rate.seconds) for c in counters])
            if refused is not None:
                index, retry_after = refused
                counter = counters[index]
                raise RateLimited(f"rate limit reached: {counter.what} ({counter.rate}) is used up", retry_after)
        return await call_next(ctx)

    return ratelimit
