"""Open streams whose caller is refused now: a revoked token or sign-in session, a user whose access
changed, an expired token. Every request is authenticated as it comes, but a stream opened earlier
(a 2025-11-25 session's GET stream, an HTTP+SSE stream, a 2026-07-28 listen stream) would go on
telling its caller of list changes and resource updates; so the streams are checked again, on each
revocation (those it may concern) and now and then (all of them).

A stream opened with one of Bastion's own OAuth access tokens is bound to the grant behind it, which
the client refreshes (at this replica or another) while the token it last used here expires: such a
stream is judged by its grant (revoked, run out, its user deactivated), not by that token's expiry."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bastion.auth.oauth.verify import grant_revocation
from bastion.auth.tokens import USER_REVOCATION
from bastion.core.errors import Forbidden, Unauthenticated
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.context import Credential
from bastion.web.mcp_front import Front, Guard

log = logging.getLogger("bastion.mcp")

EVERY_STREAM = "*"
"""What a periodic pass re-checks: tokens reach their expiry without a word."""


class StreamRechecks:
    """Re-checks open streams in the background, one pass at a time: whoever revokes is not held up,
    and revocations that arrive during a pass are re-checked together by the next one."""

    def __init__(
        self,
        fronts: Callable[[], Sequence[Front]],
        authenticator: Authenticator,
        spawn: Callable[..., None],
    ) -> None:
        self._fronts = fronts
        self._authenticator = authenticator
        self._spawn = spawn
        self._pending: set[str] = set()
        self._running = False

    def request(self, revoked: str = EVERY_STREAM) -> None:
        """Re-check the streams `revoked` (a token or sign-in session id, `user:<id>`, or an OAuth
        grant's `sid:<family>`) may concern."""
        self._pending.add(revoked)
        if not self._running:
            self._start()

    def _start(self) -> None:
        self._running = True
        try:
            self._spawn("stream-recheck-pass", self._run)
        except Exception:  # noqa: BLE001 - no task can start (shutting down): the next request tries again
            self._running = False
            log.warning("open streams not re-checked: no background task could start")

    async def _run(self) -> None:
        try:
            while self._pending:
                revoked, self._pending = self._pending, set()
                await end_refused_streams(self._fronts(), self._authenticator, revoked)
        finally:
            self._running = False
            if self._pending:  # a pass that failed leaves what came meanwhile to the next one
                self._start()


async def end_refused_streams(fronts: Sequence[Front], authenticator: Authenticator, revoked: Iterable[str]) -> None:
    """End every open stream of `fronts` that `revoked` may concern and whose credential no longer
    admits it to its virtual server (each credential and server verified once)."""
    revoked = frozenset(revoked)
    verdicts: dict[tuple[str | None, str | None, str, bool], bool] = {}
    for front in fronts:
        for stream, guard in list(front.guards.items()):
            if not _concerns(guard, revoked):
                continue
            by_grant = _grant_of(guard) is not None
            key = (guard.credential.authorization, guard.credential.client_ip, front.name, by_grant)
            if key not in verdicts:
                verdicts[key] = await _admits(authenticator, guard.credential, front.name, by_grant=by_grant)
            if not verdicts[key]:
                await _end(front, stream, guard)


def _grant_of(guard: Guard) -> str | None:
    """The OAuth grant `guard`'s stream is bound to, as verified when it was opened (or refreshed)."""
    return guard.principal.oauth_grant if guard.principal is not None else None


def _concerns(guard: Guard, revoked: frozenset[str]) -> bool:
    """Whether any of `revoked` may have changed what `guard`'s credential proves: its token, its
    OAuth grant, its user; a sign-in session is known by its user only, so any other id concerns it
    (and the unknown)."""
    if EVERY_STREAM in revoked or guard.principal is None:
        return True
    token, user, grant = guard.principal.token, guard.principal.user, _grant_of(guard)
    family = grant_revocation(grant) if grant is not None else None
    for revocation in revoked:
        if revocation.startswith(USER_REVOCATION):
            if user is not None and revocation.removeprefix(USER_REVOCATION) == user:
                return True
        elif grant is not None:
            if family is None or family == revocation:
                return True
        elif token is None or token == revocation:
            return True
    return False


async def _end(front: Front, stream: Any, guard: Guard) -> None:
    front.guards.pop(stream, None)
    try:
        await guard.close(stream)
    except Exception:  # one stream's failure must not keep the others open
        log.exception("could not end a stream whose caller is refused now")


async def _admits(authenticator: Authenticator, credential: Credential, server: str, *, by_grant: bool) -> bool:
    fresh = Credential(credential.authorization, credential.client_ip)
    try:
        if by_grant:
            await authenticator.admit_grant(fresh, server)
        else:
            await authenticator.admit(fresh, server)
    except (Unauthenticated, Forbidden):
        return False
    except Exception as exc:  # noqa: BLE001 - the store unreachable: the streams stay until it can tell
        log.warning("could not re-check an open stream's credential (%s)", type(exc).__name__)
    return True
