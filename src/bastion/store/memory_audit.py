"""In-memory AuditStore and UsageStore, for one process and for tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from bastion.core.audit_chain import AuditEntry, SignedMark
from bastion.core.ports import AuditFilter
from bastion.core.usage import UsageQuery, UsageRow


def _matches(entry: AuditEntry, q: AuditFilter) -> bool:
    checks = (
        q.since is None or entry.at >= q.since,
        q.until is None or entry.at < q.until,
        q.action is None or entry.action == q.action,
        q.target is None or entry.target == q.target,
        q.outcome is None or entry.outcome == q.outcome,
        q.server is None or entry.server == q.server,
        q.actor is None or q.actor in (entry.actor_user, entry.actor_token, entry.actor_client),
        q.before is None or (entry.id or 0) < q.before,
        q.after is None or (entry.id or 0) > q.after,
    )
    return all(checks)


class MemoryAuditStore:
    def __init__(self) -> None:
        self.records: list[AuditEntry] = []
        self.marks_: list[SignedMark] = []

    async def append(self, entries: Sequence[AuditEntry], marks: Sequence[SignedMark]) -> None:
        for entry in entries:
            self.records.append(replace(entry, id=len(self.records) + 1))
        self.marks_.extend(marks)

    async def find(self, query: AuditFilter) -> list[AuditEntry]:
        found = [e for e in self.records if _matches(e, query)]
        found.sort(key=lambda e: e.id or 0, reverse=query.after is None)
        return found[: query.limit]

    async def chains(self) -> list[str]:
        return sorted({e.chain for e in self.records} | {m.chain for m in self.marks_})

    async def entries(self, chain: str, after: tuple[int, int] | None = None, limit: int | None = None) -> list[AuditEntry]:
        found = sorted((e for e in self.records if e.chain == chain), key=lambda e: (e.seq, e.id or 0))
        if after is not None:
            found = [e for e in found if (e.seq, e.id or 0) > after]
        return found if limit is None else found[:limit]

    async def marks(self, chain: str) -> list[SignedMark]:
        return [m for m in self.marks_ if m.chain == chain]

    async def prune(self, before: str, sign: Callable[[AuditEntry], SignedMark]) -> int:
        removed = 0
        for chain in await self.chains():
            old = [e for e in self.records if e.chain == chain and e.at < before]
            if not old:
                continue
            last = max(old, key=lambda e: e.seq)
            mark = sign(last)
            kept = [e for e in self.records if not (e.chain == chain and e.seq <= last.seq)]
            removed += len(self.records) - len(kept)
            self.records = kept
            self.marks_ = [m for m in self.marks_ if not (m.chain == chain and m.seq <= last.seq)] + [mark]
        return removed


class MemoryUsageStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, ...], UsageRow] = {}

    async def save(self, rows: Sequence[UsageRow]) -> None:
        for row in rows:
            key = (row.granularity, row.start, row.writer, row.server, row.upstream, row.kind, row.item)
            self.rows[key] = replace(row, latency=list(row.latency), callers=set(row.callers))

    async def query(self, query: UsageQuery) -> list[UsageRow]:
        return [
            r
            for r in self.rows.values()
            if r.granularity == query.granularity
            and query.since <= r.start < query.until
            and query.server in (None, r.server)
            and query.upstream in (None, r.upstream)
            and query.item in (None, r.item)
        ]

    async def used_since(self, since: str) -> set[tuple[str, str]]:
        return {(r.upstream, r.item) for r in self.rows.values() if r.last_used >= since}

    async def prune(self, granularity: str, before: str) -> int:
        old = [k for k, r in self.rows.items() if r.granularity == granularity and r.start < before]
        for key in old:
            del self.rows[key]
        return len(old)
