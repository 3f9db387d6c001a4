"""The bound on 2025-11-25 MCP sessions one caller holds open on this replica, across virtual servers.

Without it one token could fill a server's session table (and the replica's memory) and lock every
other caller out. "The caller" is the user a credential acts for, else the credential itself (an
API token without a user, the admin token). A caller at its bound that opens another session gets
its own least recently used idle session closed (that client is answered 404 and initializes
again, as MCP intends); with none idle it is refused (429, with Retry-After). Other callers are
never touched. A session is counted from the moment its `initialize` is taken in, and it is in use
(never the one closed) until that request ends; the one chosen to make way admits no request from
that moment on. An HTTP+SSE stream counts too, in use for as long as it is open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from bastion.core.errors import TooManyRequests

log = logging.getLogger("bastion.mcp")

RETRY_AFTER = 5
"""Seconds a caller whose every session is in use is told to wait before opening another."""


@dataclass(eq=False, slots=True)
class Seat:
    """One open session, as its caller's bound counts it; the session manager keeps `busy`/`used`."""

    caller: str
    close: Callable[[], Awaitable[None]]
    """Ends the session everywhere (its id answers 404 from then on)."""
    busy: bool = False
    """A request is in flight on the session (a GET stream included)."""
    used: float = field(default_factory=anyio.current_time)
    """When the session was last in use (or opened)."""
    gone: bool = False
    chosen: bool = False
    """Chosen to make way for its caller's new session: admits no request from then on (web/session_manager.py)."""


class SessionBounds:
    """Each caller's open sessions on this replica, at most `per_caller` (None: unbounded)."""

    def __init__(self, per_caller: int | None) -> None:
        self.per_caller = per_caller
        self._seats: dict[str, dict[Seat, None]] = {}

    def take(self, caller: str, close: Callable[[], Awaitable[None]], *, busy: bool = False) -> tuple[Seat, Seat | None]:
        """A seat for a session `caller` opens (`busy`: with its opening request in flight), and, at its
        bound, the seat it takes over: the caller's least recently used idle session, no longer counted
        and `chosen` (it admits no request from now on), to be closed once the new session is
        established (or handed back with `give_back`). Raises TooManyRequests if none is idle."""
        seats = self._seats.setdefault(caller, {})
        victim = None
        if self.per_caller is not None and len(seats) >= self.per_caller:
            victim = min((s for s in seats if not s.busy), key=lambda s: s.used, default=None)
            if victim is None:
                raise TooManyRequests(
                    f"Too many open sessions for this caller: at most {self.per_caller}, all in use; "
                    "end one (DELETE) or retry when one is idle",
                    retry_after=RETRY_AFTER,
                )
            del seats[victim]
            victim.chosen = True
        seat = Seat(caller, close, busy=busy)
        seats[seat] = None
        return seat, victim

    def give_back(self, victim: Seat) -> None:
        """The session that would have taken `victim`'s place was not established: it counts, and admits, again."""
        if not victim.gone:
            victim.chosen = False
            self._seats.setdefault(victim.caller, {})[victim] = None

    def leave(self, seat: Seat) -> None:
        """The seat's session ended."""
        seat.gone = True
        seats = self._seats.get(seat.caller)
        if seats is not None:
            seats.pop(seat, None)
            if not seats:
                del self._seats[seat.caller]

    async def close(self, victim: Seat) -> None:
        """End the session `victim` was, for its caller's new one."""
        if victim.gone:
            return
        log.info("closed a caller's least recently used idle session: the caller is at its bound of %s", self.per_caller)
        try:
            await victim.close()
        except Exception:
            log.exception("could not close a session for its caller's new one")
        finally:
            victim.gone = True

    def counts(self) -> dict[str, int]:
        """Open sessions per caller (for tests and figures)."""
        return {caller: len(seats) for caller, seats in self._seats.items()}
