"""Usage figures: time buckets per item, and how rows from several writers add up.

Each writer (gateway process) keeps its own row per (granularity, bucket start, item): no two
replicas ever update one row, so nothing is lost to concurrent writes; a reader sums the rows.
Latency is a fixed histogram (mergeable by addition); p50/p95 are read from it as the upper bound
of the bucket holding that quantile. Distinct callers are keyed hashes, unioned across rows.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, float("inf")
)
GRANULARITIES: dict[str, timedelta] = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
GROUPS = ("item", "server", "upstream", "minute", "hour", "day")
MAX_CALLERS = 1000
"""Distinct callers kept per row; beyond it `distinct_callers` is a lower bound."""


def bucket_start(at: datetime, granularity: str) -> datetime:
    at = at.astimezone(UTC)
    if granularity == "minute":
        return at.replace(second=0, microsecond=0)
    if granularity == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def latency_index(ms: float) -> int:
    return bisect_left(LATENCY_BOUNDS_MS, ms)


@dataclass(slots=True)
class UsageRow:
    granularity: str
    start: str
    writer: str
    server: str
    upstream: str
    kind: str
    item: str
    calls: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS_MS))
    callers: set[str] = field(default_factory=set)
    last_used: str = ""

    def add(self, ok: bool, ms: float, caller: str | None, at: str) -> None:
        self.calls += 1
        self.errors += 0 if ok else 1
        self.latency[latency_index(ms)] += 1
        if caller is not None and len(self.callers) < MAX_CALLERS:
            self.callers.add(caller)
        self.last_used = max(self.last_used, at)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    since: str
    until: str
    granularity: str
    server: str | None = None
    upstream: str | None = None
    item: str | None = None


def granularity_for(since: datetime, now: datetime, kept: dict[str, float]) -> str:
    """The finest granularity whose rows still cover `since` (`kept`: retention in days)."""
    for name in ("minute", "hour", "day"):
        if now - since <= timedelta(days=kept[name]):
            return name
    return "day"


def percentile(histogram: list[int], q: float) -> float | None:
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bound, count in zip(LATENCY_BOUNDS_MS, histogram, strict=True):
        seen += count
        if seen >= rank:
            return bound if bound != float("inf") else LATENCY_BOUNDS_MS[-2]
    return LATENCY_BOUNDS_MS[-2]


def _key(row: UsageRow, group_by: str) -> tuple[str, ...]:
    if group_by == "server":
        return (row.server,)
    if group_by == "upstream":
        return (row.upstream,)
    if group_by in ("minute", "hour", "day"):
        return (bucket_start(datetime.fromisoformat(row.start), group_by).isoformat(),)
    return (row.server, row.upstream, row.kind, row.item)


_KEY_FIELDS = {
    "server": ("server",),
    "upstream": ("upstream",),
    "minute": ("time",),
    "hour": ("time",),
    "day": ("time",),
    "item": ("server", "upstream", "kind", "item"),
}


def summarize(rows: Iterable[UsageRow], group_by: str) -> list[dict[str, object]]:
    """Rows of every writer added up per group: calls, errors, p50/p95 ms, distinct callers, last used."""
    groups: dict[tuple[str, ...], UsageRow] = {}
    for row in rows:
        key = _key(row, group_by)
        total = groups.get(key)
        if total is None:
            total = groups[key] = UsageRow("", "", "", row.server, row.upstream, row.kind, row.item)
        total.calls += row.calls
        total.errors += row.errors
        total.latency = [a + b for a, b in zip(total.latency, row.latency, strict=True)]
        total.callers |= row.callers
        total.last_used = max(total.last_used, row.last_used)
    out: list[dict[str, object]] = []
    for key, total in sorted(groups.items(), key=lambda kv: (-kv[1].calls, kv[0])):
        entry: dict[str, object] = dict(zip(_KEY_FIELDS[group_by], key, strict=True))
        entry |= {
            "calls": total.calls,
            "errors": total.errors,
            "p50_ms": percentile(total.latency, 0.5),
            "p95_ms": percentile(total.latency, 0.95),
            "distinct_callers": len(total.callers),
            "last_used": total.last_used or None,
        }
        out.append(entry)
    return out
