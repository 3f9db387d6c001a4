"""Open streams whose caller is refused now: a revoked token or sign-in session, a user whose access
changed. Every request is authenticated as it comes, but a stream opened earlier (a 2025-11-25
session's GET stream, an HTTP+SSE stream, a 2026-07-28 listen stream) would go on telling its
caller of list changes and resource updates; on each revocation the streams are checked again."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bastion.core.errors import Forbidden, Unauthenticated
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.context import Credential
from bastion.web.mcp_front import Front

log = logging.getLogger("bastion.mcp")


async def end_refused_streams(fronts: Sequence[Front], authenticator: Authenticator) -> None:
    """End every open stream of `fronts` whose credential no longer admits it to its virtual server
    (each credential and server verified once)."""
    verdicts: dict[tuple[str | None, str | None, str], bool] = {}
    for front in fronts:
        for stream, guard in list(front.guards.items()):
            key = (guard.credential.authorization, guard.credential.client_ip, front.name)
            if key not in verdicts:
                verdicts[key] = await _admits(authenticator, guard.credential, front.name)
            if verdicts[key]:
                continue
            front.guards.pop(stream, None)
            try:
                await guard.close(stream)
            except Exception:  # one stream's failure must not keep the others open
                log.exception("could not end a stream whose caller is refused now")


async def _admits(authenticator: Authenticator, credential: Credential, server: str) -> bool:
    try:
        await authenticator.admit(Credential(credential.authorization, credential.client_ip), server)
    except (Unauthenticated, Forbidden):
        return False
    except Exception as exc:  # noqa: BLE001 - the store unreachable: the streams stay until it can tell
        log.warning("could not re-check an open stream's credential (%s)", type(exc).__name__)
    return True
