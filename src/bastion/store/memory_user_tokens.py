"""The in-memory UpstreamTokenStore (tests and single-process tools): same contract as the SQL one."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bastion.core.models import UpstreamTokens
from bastion.core.ports import ConnectFlow


class MemoryUpstreamTokens:
    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], UpstreamTokens] = {}
        self._flows: dict[str, ConnectFlow] = {}

    async def get_tokens(self, upstream: str, user: str) -> UpstreamTokens | None:
        return self._tokens.get((upstream, user))

    async def save_tokens(self, upstream: str, user: str, tokens: UpstreamTokens) -> None:
        self._tokens[(upstream, user)] = tokens

    async def delete_tokens(self, upstream: str, user: str) -> bool:
        return self._tokens.pop((upstream, user), None) is not None

    async def delete_upstream_tokens(self, upstream: str) -> int:
        gone = [key for key in self._tokens if key[0] == upstream]
        for key in gone:
            del self._tokens[key]
        return len(gone)

    async def save_flow(self, state_hash: str, flow: ConnectFlow) -> None:
        self._flows[state_hash] = flow

    async def take_flow(self, state_hash: str, now: datetime) -> ConnectFlow | None:
        flow = self._flows.pop(state_hash, None)
        return flow if flow is not None and flow.expires_at > now else None

    async def get_flow(self, state_hash: str, now: datetime) -> ConnectFlow | None:
        flow = self._flows.get(state_hash)
        return flow if flow is not None and flow.expires_at > now else None

    async def mark_flow(
        self, state_hash: str, *, csrf_hash: str | None = None, browser_hash: str | None = None
    ) -> bool:
        flow = self._flows.get(state_hash)
        if flow is None:
            return False
        changes = {k: v for k, v in (("csrf_hash", csrf_hash), ("browser_hash", browser_hash)) if v is not None}
        self._flows[state_hash] = replace(flow, **changes)  # type: ignore[arg-type]
        return True
