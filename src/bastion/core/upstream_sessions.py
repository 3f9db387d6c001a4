"""Which upstream session carries a call: the shared one, or the caller's own (pure decisions).

A 2026-07-28 call carries its caller's context in the request itself, so any number of callers
share one upstream session. A 2025-11-25 session holds caller context (capabilities, roots, log
level, questions asked mid-call), so each caller gets a session of their own, except where the
operator chose otherwise: a `stateless` upstream (declared safe to share), or a stdio upstream
that is one process (`shared`, `per_user`), whose shared session then refuses caller context.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from bastion.core.models import UpstreamSpec

ClientMode = Literal["auto", "legacy", "2026-07-28"]
LEGACY = "2025-11-25"


@dataclass(frozen=True, slots=True)
class SessionChoice:
    """`own`: the caller's own session, opened in `mode`; else the shared (or per-user) one."""

    own: bool
    mode: ClientMode = "legacy"


SHARED = SessionChoice(own=False)


def shared_mode(spec: UpstreamSpec) -> ClientMode:
    """How the shared session connects: newest era on offer, unless the operator pinned one."""
    if spec.protocol == LEGACY:
        return "legacy"
    if spec.protocol == "2026-07-28":
        return "2026-07-28"
    return "auto"


ASKABLE = ("sampling", "elicitation", "roots")


def askable(capabilities: dict[str, Any]) -> bool:
    """Whether a caller declared anything an upstream could ask it (sampling, elicitation, roots)."""
    return any(name in capabilities for name in ASKABLE)


def choose_session(
    spec: UpstreamSpec, *, caller_legacy: bool, caller_askable: bool, shared_is_legacy: bool, legacy_refused: bool
) -> SessionChoice:
    """Where one caller's call goes. `shared_is_legacy`: the shared session speaks 2025-11-25 (the
    upstream offers nothing newer, or is pinned); `legacy_refused`: it refused the handshake era.

    A 2025-11-25 caller is spoken for in 2025-11-25 where the upstream offers it and could ask the
    caller something (only that era lets an upstream ask); one that declared nothing to ask loses
    nothing in 2026-07-28, where its capabilities and log level travel with each request."""
    if spec.isolation == "stateless" or spec.protocol == "2026-07-28":
        return SHARED
    legacy_era = shared_is_legacy or (caller_legacy and caller_askable and not legacy_refused)
    if not legacy_era:
        return SHARED
    if spec.transport == "stdio" and spec.isolation != "per_session":
        return SHARED  # one process: its shared session refuses what it cannot attribute
    return SessionChoice(own=True, mode="legacy")


def caller_key(
    user: str | None, session: str | None, capabilities: dict[str, Any] | None, client: str | None = None
) -> str:
    """A caller's identity for their own upstream session: their 2025-11-25 session, or (2026-07-28,
    no session) who they are, the credential they call with (`client`: an OAuth grant, which its
    refreshed tokens share, or an API token) and what they declared: two clients of one user (a
    desktop app and an IDE) give their own roots to their own sessions. Never a bare session id:
    the user is part of it."""
    if session is not None:
        return f"{user or ''}|s|{session}"
    declared = json.dumps([client or "", capabilities or {}], sort_keys=True)
    return f"{user or ''}|c|{hashlib.sha256(declared.encode()).hexdigest()[:32]}"


def caller_digest(caller: str) -> str:
    """What names a caller (`caller_key`) to the other replicas, on the change feed: a hash of its key,
    so the feed carries neither who the caller is nor its session's key."""
    return hashlib.sha256(b"bastion/caller\0" + caller.encode()).hexdigest()
