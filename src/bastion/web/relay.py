"""What a call relays to the client while it runs: progress, and upstream logs at the client's level.

A 2026-07-28 client opts in to logs per request (`_meta` logLevel); a 2025-11-25 client per
session, with `logging/setLevel`, which Bastion keeps in the session's connection state.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import warnings
from typing import Any

from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import EmptyResult, SetLevelRequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bastion.core.ports import LOG_LEVELS, CallHooks, LogCallback, ProgressCallback
from bastion.web.bridge import ask_on_request
from bastion.web.session_link import current_connection, session_state

# Bastion relays logs on purpose for the clients that still use them: the SDK's deprecation notice
# for the logging capability (2026-07-28) would otherwise fire on every relayed entry.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning, module=r"bastion\.web\.relay")

LOG_LEVEL_STATE = "bastion.log_level"
_SESSION_KEY_STATE = "bastion.session_key"
_LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"


async def set_log_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
    """`logging/setLevel` on a 2025-11-25 session: remembered for the session's later calls."""
    session_state()[LOG_LEVEL_STATE] = params.level
    return EmptyResult()


def session_key(state: dict[str, Any], session_id: str | None) -> str:
    """An opaque key for a 2025-11-25 session, kept in its connection state: what the caller's own
    upstream session is found by (with the verified user; see core.upstream_sessions). Made from the
    session's id (`Mcp-Session-Id`, hashed: the id itself is kept nowhere else), so every replica
    serving the session has the same key and a notice for the caller's own sessions names them on
    each (app/shared.py `RootsEverywhere`); random for a session without an id."""
    key = state.get(_SESSION_KEY_STATE)
    if not isinstance(key, str):
        if session_id:
            digest = hashlib.sha256(b"bastion/session-key\0" + session_id.encode()).digest()
            key = base64.urlsafe_b64encode(digest[:18]).decode()
        else:
            key = secrets.token_urlsafe(18)
        state[_SESSION_KEY_STATE] = key
    return key


def session_log_level(state: dict[str, Any]) -> str | None:
    level = state.get(LOG_LEVEL_STATE)
    return level if level in LOG_LEVELS else None


def _raw_meta(ctx: ServerRequestContext[Any]) -> dict[str, Any]:
    meta = ctx.params.get("_meta") if isinstance(ctx.params, dict) else None
    return meta if isinstance(meta, dict) else {}


def call_hooks(ctx: ServerRequestContext[Any]) -> CallHooks | None:
    """The hooks for one call on the SDK path, or None when the client asked for nothing."""
    meta = _raw_meta(ctx)
    progress = _progress_relay(ctx, meta.get("progressToken"))
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        level = meta.get(_LOG_LEVEL_META)
        level = level if level in LOG_LEVELS else None
        if progress is None and level is None:
            return None
        return CallHooks(on_progress=progress, log_level=level, on_log=_log_relay(ctx, level) if level else None)
    # 2025-11-25: as directly, the upstream's logs reach a client that set no level (an upstream
    # session of its own logs at the level the client set, if any).
    state = session_state()
    level = session_log_level(state)
    connection = current_connection()
    return CallHooks(
        on_progress=progress,
        log_level=level,
        on_log=_log_relay(ctx, level or LOG_LEVELS[0]),
        ask=ask_on_request(ctx),
        session=session_key(state, connection.session_id if connection is not None else None),
        legacy=True,
    )


def _progress_relay(ctx: ServerRequestContext[Any], token: object) -> ProgressCallback | None:
    if isinstance(token, bool) or not isinstance(token, str | int):
        return None
    session, request_id = ctx.session, ctx.request_id

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        # The SDK types the id as str but routes by the id as received (int ids included).
        related: Any = request_id
        await session.send_progress_notification(token, progress, total, message, related_request_id=related)

    return relay


def _log_relay(ctx: ServerRequestContext[Any], level: str) -> LogCallback:
    session, request_id, floor = ctx.session, ctx.request_id, LOG_LEVELS.index(level)

    async def relay(params: dict[str, Any]) -> None:
        entry_level = params.get("level")
        if entry_level not in LOG_LEVELS or LOG_LEVELS.index(entry_level) < floor:
            return
        logger = params.get("logger")
        await session.send_log_message(
            entry_level, params.get("data"), logger if isinstance(logger, str) else None, related_request_id=request_id
        )

    return relay

