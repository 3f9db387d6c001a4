"""The audit log's tamper evidence, as pure functions over records.

Each writer (one gateway process) appends to a chain of its own: record n carries the hash of
record n-1, and its own hash covers every field and its place (chain, seq). So several replicas
write at once without coordinating, and within a chain an edited record breaks its own hash, a
deleted or inserted one breaks the sequence and the links, and a reordering breaks both.
Periodically the writer signs its chain's head (seq, hash); a tail cut after a signed head is
caught by the head. Retention deletes old records only behind a signed checkpoint that names the
last pruned record's seq and hash, where the remaining chain must continue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bastion.core.json_encoders import json_encoder
from bastion.core.surrogates import replaced

GENESIS = "0" * 64


@dataclass(slots=True)
class AuditEntry:
    """One audit record as stored. Argument and result values never appear: only keyed hashes.

    Treated as immutable (nothing assigns to a field), but not declared frozen: a frozen dataclass
    sets each of its 19 fields through object.__setattr__, 3 us of every record the writer seals."""

    chain: str
    seq: int
    at: str
    """ISO 8601 UTC time of the event."""
    replica: str
    action: str
    target: str
    outcome: str
    actor_user: str | None = None
    actor_token: str | None = None
    actor_client: str | None = None
    actor_address: str | None = None
    server: str | None = None
    latency_ms: float | None = None
    args_hmac: str | None = None
    result_hmac: str | None = None
    detail: str | None = None
    prev_hash: str = GENESIS
    hash: str = ""
    id: int | None = field(default=None, compare=False)
    """The store's row id (cursor pagination); not part of the hash."""


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditEntry))
_HASHED = tuple(sorted(f for f in FIELDS if f not in ("hash", "id")))
_ENCODE = json_encoder(separators=(",", ":"), ensure_ascii=False)
_SORTED = json_encoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


WIDTHS = {
    "chain": 40, "at": 32, "replica": 40, "action": 200, "outcome": 20, "actor_user": 320, "actor_token": 64,
    "actor_client": 320, "actor_address": 64, "server": 63,
}
"""The text fields stored in columns of a bounded width (the store's table uses these); `target` and
`detail` are unbounded."""
_TEXT = ("target", "detail", *WIDTHS)


def fitted(values: dict[str, Any]) -> dict[str, Any]:
    """A record's values as every database stores them, before they are hashed: text past its
    column's width is cut, and a NUL (which PostgreSQL cannot store) or a lone surrogate (which
    neither UTF-8 nor the hash can encode) becomes U+FFFD. A record a caller can shape (a long path
    refused at the door, an identity provider's long email) must not fail its batch."""
    for name in _TEXT:
        value = values.get(name)
        if value.__class__ is str:
            if "\x00" in value:
                value = values[name] = value.replace("\x00", "\ufffd")
            if not value.isascii():
                value = values[name] = replaced(value)
            width = WIDTHS.get(name)
            if width is not None and len(value) > width:
                values[name] = value[:width]
    return values


def entry_values(entry: AuditEntry) -> dict[str, Any]:
    """Every field by name (what dataclasses.asdict gives, without its deep copies)."""
    return {name: getattr(entry, name) for name in FIELDS}


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the canonical JSON (sorted keys) of every field but the hash and the row id."""
    canonical = _ENCODE({name: getattr(entry, name) for name in _HASHED})
    return hashlib.sha256(canonical.encode()).hexdigest()


def sealed(values: dict[str, Any], prev_hash: str) -> AuditEntry:
    """The entry with these field values (every field but prev_hash, hash and id), linked after
    `prev_hash`: its hash is `entry_hash` of it, computed from the values without a second entry."""
    values["prev_hash"] = prev_hash
    values.pop("hash", None)
    row_id = values.pop("id", None)
    if len(values) == len(_HASHED):  # exactly the hashed fields: encoded as they are, keys sorted
        canonical = _SORTED(values)
    else:
        canonical = _ENCODE({name: values[name] for name in _HASHED})  # KeyError if one is missing
    return AuditEntry(**values, hash=hashlib.sha256(canonical.encode()).hexdigest(), id=row_id)


def link(entries: Iterable[AuditEntry], prev_hash: str) -> list[AuditEntry]:
    """Set each entry's prev_hash and hash in order, continuing a chain whose head is `prev_hash`."""
    out = []
    for entry in entries:
        linked = sealed(entry_values(entry), prev_hash)
        prev_hash = linked.hash
        out.append(linked)
    return out


@dataclass(frozen=True, slots=True)
class SignedMark:
    """A signed statement about a chain: `head` (records 1..seq exist, the last with `hash`) or
    `checkpoint` (records 1..seq were pruned by retention; the chain continues after `hash`)."""

    chain: str
    kind: str
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str


def mark_message(chain: str, kind: str, seq: int, hash_: str, at: str) -> bytes:
    """The bytes a head or checkpoint signature covers."""
    return f"bastion-audit-v1|{chain}|{kind}|{seq}|{hash_}|{at}".encode()


Verifier = Callable[[str, bytes, str], bool]
"""(key id, message, signature) -> whether the signature is valid under that key."""


@dataclass(frozen=True, slots=True)
class Problem:
    chain: str
    seq: int | None
    record_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    chains: int
    records: int
    problems: tuple[Problem, ...] = ()
    unsigned_tail: int = 0
    """Records after the last signed head (written since the last signing)."""

    def as_json(self) -> dict[str, Any]:
        first = self.problems[0] if self.problems else None
        return {
            "ok": self.ok,
            "chains": self.chains,
            "records": self.records,
            "unsigned_tail": self.unsigned_tail,
            "first_bad": asdict(first) if first is not None else None,
            "problems": [asdict(p) for p in self.problems],
        }


class ChainCheck:
    """Verifies one chain from its records fed in the store's order (by seq), page by page: it keeps
    only the records its signed heads cover, so a chain of any length verifies in bounded memory."""

    def __init__(self, chain: str, marks: Sequence[SignedMark], valid: Verifier) -> None:
        self.chain = chain
        self.problems: list[Problem] = []
        self.records = 0
        good = [m for m in marks if valid(m.key_id, mark_message(m.chain, m.kind, m.seq, m.hash, m.at), m.signature)]
        for bad in (m for m in marks if m not in good):
            self.problems.append(Problem(chain, bad.seq, None, f"{bad.kind} signature for seq {bad.seq} is not valid"))
        checkpoints = [m for m in good if m.kind == "checkpoint"]
        self._start = max(checkpoints, key=lambda m: m.seq) if checkpoints else None
        self._heads = sorted((m for m in good if m.kind == "head"), key=lambda m: m.seq)
        self._head_seqs = {m.seq for m in self._heads}
        self._expected_seq = (self._start.seq if self._start else 0) + 1
        self._prev = self._start.hash if self._start else GENESIS
        self._covered: dict[int, AuditEntry] = {}
        self._broken = False

    def feed(self, entries: Iterable[AuditEntry]) -> None:
        """The next records of the chain; after the first bad record they are only counted."""
        for entry in entries:
            self.records += 1
            if self._broken:
                continue
            where = f"record seq {entry.seq} (id {entry.id})"
            problem = None
            if entry.seq != self._expected_seq:
                what = "missing" if entry.seq > self._expected_seq else "out of order or duplicated"
                problem = f"{where}: expected seq {self._expected_seq} ({what})"
            elif entry_hash(entry) != entry.hash:
                problem = f"{where}: its content does not match its hash (edited)"
            elif entry.prev_hash != self._prev:
                problem = f"{where}: does not link to the record before it"
            if problem is not None:
                self.problems.append(Problem(self.chain, entry.seq, entry.id, problem))
                self._broken = True
                continue
            if entry.seq in self._head_seqs:
                self._covered[entry.seq] = entry
            self._prev, self._expected_seq = entry.hash, self._expected_seq + 1

    def finish(self) -> tuple[list[Problem], int]:
        """Problems found (first one first) and how many records no signed head covers."""
        problems = self.problems
        start, last_seq = self._start, self._expected_seq - 1
        for head in self._heads:
            if start is not None and head.seq <= start.seq:
                continue
            if head.seq > last_seq:
                if not any(p.record_id is not None for p in problems):
                    problems.append(
                        Problem(self.chain, last_seq + 1, None, f"records {last_seq + 1}..{head.seq} are missing (truncated tail)")
                    )
                break
            covered = self._covered.get(head.seq)
            if covered is not None and covered.hash != head.hash:
                problems.append(Problem(self.chain, head.seq, covered.id, f"record seq {head.seq} differs from its signed head"))
                break
        signed = max((h.seq for h in self._heads), default=start.seq if start else 0)
        return problems, max(0, last_seq - signed)
