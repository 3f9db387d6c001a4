"""Validate: a tool call's arguments against the tool's input schema, for entry points that ask.

The REST facade promises a 422 listing every bad field before anything reaches the upstream. It
runs after route, so a caller learns a tool's schema only once the policy lets them call it.
"""

from __future__ import annotations

from bastion.core.arguments import argument_errors
from bastion.core.errors import InvalidArguments
from bastion.pipeline.base import Next, Result
from bastion.pipeline.context import CallContext


async def validate(ctx: CallContext, call_next: Next) -> Result:
    if ctx.check_arguments and ctx.method == "tools/call" and ctx.item is not None:
        errors = argument_errors(ctx.item.definition.get("inputSchema"), ctx.params.get("arguments", {}))
        if errors:
            noun = "field" if len(errors) == 1 else "fields"
            raise InvalidArguments(
                f"the arguments do not match the tool's input schema ({len(errors)} {noun})", errors=errors
            )
    return await call_next(ctx)
