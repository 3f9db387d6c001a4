"""Authenticate: the edge verified the bearer token; a request without a principal goes no further."""

from __future__ import annotations

from bastion.core.errors import Unauthenticated
from bastion.pipeline.base import Next, Result
from bastion.pipeline.context import CallContext


async def authenticate(ctx: CallContext, call_next: Next) -> Result:
    if ctx.principal is None:
        raise Unauthenticated("a bearer token is required")
    return await call_next(ctx)
