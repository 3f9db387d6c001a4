"""The audit writer: records events in memory on the hot path and writes them in batches.

This process appends to its own hash chain (named by its replica id), so replicas never contend.
Hashing, the keyed hashes of arguments and results, and signing all happen at flush time, in the
background. A head is signed at most every `sign_interval` seconds and on close, so a SIGKILL can
lose at most the last `flush_interval` seconds of records (never written) and leave at most
`sign_interval` seconds of written records unsigned (reported by verify as the unsigned tail).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from bastion.core.audit_chain import (
    AuditEntry,
    ChainCheck,
    Problem,
    SignedMark,
    Verdict,
    entry_values,
    fitted,
    mark_message,
    sealed,
)
from bastion.core.errors import BastionError, RecordsRefused
from bastion.core.observation import AUDITED_METHODS, CallRecord, EdgeEvent
from bastion.core.ports import AuditStore
from bastion.telemetry.audit_keys import AuditKeys

log = logging.getLogger("bastion.audit")

Listener = Callable[[Sequence[AuditEntry]], None]
"""Told of every batch once it is stored (the SIEM export)."""

VERIFY_PAGE = 5000
"""Records read at a time when verifying a chain."""


_stamped = (-1, "")
"""The last second formatted and its text (strftime once per second of records, not per record)."""


def iso(epoch: float) -> str:
    """The one time format of audit records: fixed width, UTC, microseconds (sorts as text)."""
    global _stamped
    fraction, whole = math.modf(epoch)  # rounded as datetime.fromtimestamp rounds
    second, micro = int(whole), round(fraction * 1_000_000)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    elif micro < 0:
        second, micro = second - 1, micro + 1_000_000
    if _stamped[0] != second:
        _stamped = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_stamped[1]}.{micro:06d}Z"


def audit_time(value: datetime) -> str:
    """An aware time in the audit's format, e.g. a filter's bound. Not strftime: it writes the year
    999 as "999", which sorts after every record's "2026"."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


UNHASHED = "arguments or result could not be hashed"
"""The detail of a call recorded without its keyed hashes."""

Pending = CallRecord | EdgeEvent | AuditEntry | dict[str, Any]
"""Waiting to be chained: a call (or its values, made when told of a batch), an edge event, an entry."""


def _args_of(params: dict[str, Any] | None) -> Any:
    if params is None:
        return None
    return {k: v for k, v in params.items() if k != "_meta"}


def _linked(entries: Sequence[AuditEntry], head: str) -> list[AuditEntry]:
    """The entries in order, each sealed again where its link no longer follows the one before."""
    out: list[AuditEntry] = []
    for entry in entries:
        if entry.prev_hash != head:
            entry = sealed(entry_values(entry), head)
        out.append(entry)
        head = entry.hash
    return out


class AuditLog:
    """A CallObserver and EdgeObserver that writes the tamper-evident audit log."""

    def __init__(
        self,
        store: AuditStore,
        keys: AuditKeys,
        replica: str,
        *,
        flush_interval: float = 1.0,
        sign_interval: float = 10.0,
        max_queue: int = 100_000,
        on_dropped: Callable[[int], None] | None = None,
        on_written: Callable[[int, float], None] | None = None,
        on_failed: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.chain = replica
        self.replica = replica
        self._flush_interval = flush_interval
        self._sign_interval = sign_interval
        self._max_queue = max_queue
        self._on_dropped = on_dropped
        self._on_written = on_written
        self._on_failed = on_failed
        self._pending: list[Pending] = []
        self._unwritten: list[AuditEntry] = []
        self._dropped = 0
        self._seq = 0
        self._head = "0" * 64
        self._signed_seq = 0
        self._signed_at = time.monotonic()
        self._lock = anyio.Lock()
        self.listeners: list[Listener] = []
        self.catch_up: Callable[[], None] = lambda: None
        """Called before each flush: tells this log of calls finished but not yet told (a batch)."""

    # -- recording (hot path: no I/O, no hashing) ------------------------------------------------

    def _enqueue(self, pending: Pending) -> None:
        if len(self._pending) >= self._max_queue:
            self._dropped += 1
            if self._on_dropped is not None:
                self._on_dropped(1)
            return
        self._pending.append(pending)

    def call_finished(self, record: CallRecord) -> None:
        # Hot path: keep the record; the entry, its time and keyed hashes are made at flush.
        if record.method in AUDITED_METHODS or record.outcome in ("denied", "rate_limited"):
            self._enqueue(record)

    def calls_finished(self, records: Sequence[CallRecord]) -> None:
        """A batch, told a moment after its calls: each audited call's values and keyed hashes are
        made now, while its arguments and result were read a moment ago, rather than at the flush a
        second later, and the arguments and result are let go. Only the chain (seq, hashes) waits
        for the flush. A call whose arguments or result cannot be hashed is still recorded, without
        those hashes, and the rest of the batch after it."""
        for record in records:
            if record.method in AUDITED_METHODS or record.outcome in ("denied", "rate_limited"):
                try:
                    values = self._call_values(record, 0)
                except Exception:  # never lose the call itself, nor the calls after it
                    log.exception("the arguments or result of an audited call could not be hashed")
                    unhashed = replace(record, params=None, result=None, error=record.error or UNHASHED)
                    values = self._call_values(unhashed, 0)
                self._enqueue(values)

    def edge_event(self, event: EdgeEvent) -> None:
        self.catch_up()  # calls that finished before it come first in the chain
        self._enqueue(event)

    def _call_values(self, record: CallRecord, seq: int) -> dict[str, Any]:
        digest = self.keys.digest
        return {
            "chain": self.chain,
            "seq": seq,
            "at": iso(record.started + record.seconds),
            "replica": self.replica,
            "action": record.method,
            "target": record.item or record.asked or "",
            "outcome": record.outcome,
            "actor_user": record.user,
            "actor_token": record.token,
            "actor_client": record.principal,
            "actor_address": record.address,
            "server": record.server or None,
            "latency_ms": round(record.seconds * 1000, 3),
            "args_hmac": digest(_args_of(record.params)) if record.params is not None else None,
            "result_hmac": digest(record.result) if record.result is not None else None,
            "detail": record.error,  # fitted at the flush, as every text (surrogates, NUL, width)
        }

    def _edge_values(self, event: EdgeEvent, seq: int) -> dict[str, Any]:
        # Rare (changes, sign-ins, refusals): built as an entry, read back as values.
        return entry_values(AuditEntry(
            self.chain, seq, iso(event.started + event.seconds), self.replica, event.action, event.target, event.outcome,
            actor_user=event.user, actor_token=event.token, actor_client=event.principal, actor_address=event.address,
            latency_ms=round(event.seconds * 1000, 3), detail=event.detail,
        ))

    # -- writing (background) ----------------------------------------------------------------------

    def _values(self, pending: Pending, seq: int) -> dict[str, Any]:
        if isinstance(pending, dict):
            pending["seq"] = seq
            return pending
        if isinstance(pending, CallRecord):
            return self._call_values(pending, seq)
        if isinstance(pending, EdgeEvent):
            return self._edge_values(pending, seq)
        values = entry_values(pending)
        values["seq"] = seq
        return values

    def _mark(self, kind: str, seq: int, hash_: str) -> SignedMark:
        at = iso(time.time())
        signature = self.keys.sign(mark_message(self.chain, kind, seq, hash_, at))
        return SignedMark(self.chain, kind, seq, hash_, at, self.keys.key_id, signature)

    async def flush(self, *, sign: bool = False) -> int:
        """Write what is pending (and sign the head when due or asked); returns records written."""
        self.catch_up()
        async with self._lock:
            batch, self._pending = self._pending, []
            if self._dropped:
                overflow = AuditEntry(
                    self.chain, 0, iso(time.time()), self.replica, "audit.overflow", "audit queue",
                    "error", detail=f"{self._dropped} audit records were dropped: the queue was full",
                )
                batch.append(overflow)
                self._dropped = 0
            linked = []
            for pending in batch:
                self._seq += 1
                entry = sealed(fitted(self._values(pending, self._seq)), self._head)
                self._head = entry.hash
                linked.append(entry)
            todo = [*self._unwritten, *linked]
            due = sign or time.monotonic() - self._signed_at >= self._sign_interval
            marks = [self._mark("head", self._seq, self._head)] if due and self._seq > self._signed_seq else []
            if not todo and not marks:
                return 0
            started = time.perf_counter()
            try:
                await self.store.append(todo, marks)
            except RecordsRefused as refused:
                if not todo:  # the head's mark itself: signing is tried again at the next flush
                    log.error("audit chain head not signed: %s", refused.detail)
                    return 0
                written: list[AuditEntry] = []
                try:
                    with anyio.CancelScope(shield=True):  # stopped halfway, memory and the table would disagree
                        await self._set_aside(todo, written)
                except BastionError as exc:
                    self._unwritten = _linked(todo[len(written) :], written[-1].hash if written else todo[0].prev_hash)
                    self._head = self._unwritten[-1].hash
                    for listener in self.listeners:
                        listener(written)
                    return self._not_written(exc)
                todo, self._head = written, written[-1].hash
                if marks:
                    marks = [self._mark("head", self._seq, self._head)]
                    try:
                        await self.store.append([], marks)
                    except BastionError as exc:  # the records are written; signing is tried at the next flush
                        log.error("audit chain head not signed: %s", exc.detail)
                        marks = []
            except BastionError as exc:
                self._unwritten = todo  # kept, in order, for the next flush
                return self._not_written(exc)
            self._unwritten = []
            if marks:
                self._signed_seq, self._signed_at = self._seq, time.monotonic()
            if self._on_written is not None:
                self._on_written(len(todo), time.perf_counter() - started)
        for listener in self.listeners:
            listener(todo)
        return len(todo)

    async def _set_aside(self, todo: list[AuditEntry], written: list[AuditEntry]) -> None:
        """The database refused a value in this batch (a kind `fitted` does not foresee), and would
        refuse it at every flush after, stopping this replica's audit log for good. The batch is
        written in halves, down to the refused record, which is replaced, in its place in the chain,
        by a record of Bastion's own saying so; the records after it are sealed again on the new
        link. A few transactions per refused record, not one per record. Appends what is written to
        `written`, in order (one entry per entry of `todo`); raises if the database stops answering."""
        entries = _linked(todo, written[-1].hash if written else todo[0].prev_hash)
        try:
            await self.store.append(entries, [])
        except RecordsRefused as exc:
            if len(entries) > 1:
                middle = len(entries) // 2
                await self._set_aside(entries[:middle], written)
                await self._set_aside(entries[middle:], written)
                return
            entry = entries[0]
            log.error(
                "audit record %d (%s by %s) refused by the database, stored as unstorable: %s",
                entry.seq, entry.action, entry.actor_client, exc.detail,
            )
            entries = [await self._replace(entry, exc.detail)]
        written.extend(entries)

    async def _replace(self, entry: AuditEntry, reason: str) -> AuditEntry:
        """Write the note that stands for a refused record: with its actor and outcome when the
        database takes them, else (one of them is the refused value) with Bastion's own text only."""
        note = sealed(fitted(self._unstorable(entry, reason, actor=True)), entry.prev_hash)
        try:
            await self.store.append([note], [])
        except RecordsRefused:
            note = sealed(fitted(self._unstorable(entry, reason, actor=False)), entry.prev_hash)
            await self.store.append([note], [])
        return note

    def _not_written(self, exc: BastionError) -> int:
        if self._on_failed is not None:
            self._on_failed()
        log.warning("audit batch not written, will retry: %s", exc.detail)
        return 0

    def _unstorable(self, entry: AuditEntry, reason: str, *, actor: bool) -> dict[str, Any]:
        """In place of a refused record: its place in the chain, time, replica and why, in Bastion's own
        text (its action, target or detail may be the refused value); with `actor`, also who did it
        and the outcome: identifiers Bastion resolved itself, not text the request carried."""
        if not actor:
            return entry_values(AuditEntry(
                entry.chain, entry.seq, entry.at, entry.replica, "audit.unstorable", "", "error",
                detail=f"record {entry.seq} could not be stored and was replaced (without its actor): {reason}",
            ))
        return entry_values(AuditEntry(
            entry.chain, entry.seq, entry.at, entry.replica, "audit.unstorable", "", entry.outcome,
            actor_user=entry.actor_user, actor_token=entry.actor_token, actor_client=entry.actor_client,
            actor_address=entry.actor_address,
            detail=f"record {entry.seq} could not be stored and was replaced: {reason}",
        ))

    async def run(self) -> None:
        """Flush every `flush_interval` seconds until cancelled; `close` writes the rest."""
        while True:
            await anyio.sleep(self._flush_interval)
            await self.flush()

    async def close(self) -> None:
        """Write everything still pending and sign the head (clean shutdown)."""
        with anyio.CancelScope(shield=True):
            await self.flush(sign=True)

    # -- reading ---------------------------------------------------------------------------------

    async def verify(self) -> Verdict:
        """Every chain, read a page at a time: memory stays bounded however long the log is."""
        problems: list[Problem] = []
        records = unsigned = 0
        chains = await self.store.chains()
        for chain in chains:
            check = ChainCheck(chain, await self.store.marks(chain), self.keys.valid)
            after: tuple[int, int] | None = None
            while True:
                page = await self.store.entries(chain, after=after, limit=VERIFY_PAGE)
                check.feed(page)
                if len(page) < VERIFY_PAGE:
                    break
                after = (page[-1].seq, page[-1].id or 0)
            found, tail = check.finish()
            problems += found
            records += check.records
            unsigned += tail
        return Verdict(not problems, len(chains), records, tuple(problems), unsigned)

    async def prune(self, days: float) -> int:
        """Delete records older than `days`, leaving a signed checkpoint per chain."""
        before = iso((datetime.now(UTC) - timedelta(days=days)).timestamp())

        def checkpoint(last: AuditEntry) -> SignedMark:
            at = iso(time.time())
            signature = self.keys.sign(mark_message(last.chain, "checkpoint", last.seq, last.hash, at))
            return SignedMark(last.chain, "checkpoint", last.seq, last.hash, at, self.keys.key_id, signature)

        return await self.store.prune(before, checkpoint)
