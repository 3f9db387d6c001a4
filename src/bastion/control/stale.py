"""Changes made again on fresh state when another replica wrote the same row meanwhile.

Within one replica, changes of one upstream, server or catalog item take turns; across replicas the
store's conditional write (a row revision, or the values an edit was made on) refuses a change made
on what was read before another replica saved. A change is a merge of what a request asked for into
what is stored, so it is correct to make it again on what is stored now; a request that keeps losing
is answered 409 rather than made to wait without end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from bastion.core.errors import Conflict, StaleWrite

T = TypeVar("T")

ATTEMPTS = 5


async def on_fresh_state(
    what: str, attempt: Callable[[], Awaitable[T]], refresh: Callable[[], Awaitable[object]], attempts: int = ATTEMPTS
) -> T:
    """Run `attempt` (which reads, changes and conditionally saves `what`); each time another replica
    saved first, `refresh` what this replica knows and run it again, up to `attempts` times."""
    for _ in range(attempts - 1):
        try:
            return await attempt()
        except StaleWrite:
            await refresh()
    try:
        return await attempt()
    except StaleWrite as exc:
        raise Conflict(
            f"{what} was changed by other requests at the same time, {attempts} times in a row; send this change "
            f"again (the last time: {exc.detail})"
        ) from None
