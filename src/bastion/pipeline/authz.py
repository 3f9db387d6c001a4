"""Authorize: apply the virtual server's per-tool policy to this caller.

The token already reached the server (the edge checked its grants); here the server's own rules
decide which of its tools, prompts and resources this caller sees and may use. Route reads the
result: lists come filtered, and a call to something the policy denies is Forbidden, not unknown.
"""

from __future__ import annotations

from bastion.core.policy import Caller
from bastion.pipeline.base import Next, Result
from bastion.pipeline.context import CallContext, Principal


def caller_of(principal: Principal) -> Caller:
    return Caller(user=principal.user, teams=principal.teams, role=principal.role, token=principal.token)


async def authorize(ctx: CallContext, call_next: Next) -> Result:
    view, principal = ctx.view, ctx.principal
    assert view is not None and principal is not None, "authenticate and resolve run before authorize"
    if view.spec.policy is not None:
        ctx.restriction = view.restricted(caller_of(principal))
    return await call_next(ctx)
