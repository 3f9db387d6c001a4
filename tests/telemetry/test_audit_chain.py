"""The audit chain, with the in-memory store: written in batches, signed, and every kind of
tampering detected with the first bad record named."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

import bastion.telemetry.audit
from bastion.core.audit_chain import AuditEntry
from bastion.core.observation import CallRecord, EdgeEvent
from bastion.store.memory_audit import MemoryAuditStore
from bastion.telemetry.audit import AuditLog, iso
from bastion.telemetry.audit_keys import AuditKeys

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True, params=[5000, 2], ids=["one-page", "pages-of-2"])
def page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every case verifies with the whole chain in one page and across pages of two records."""
    monkeypatch.setattr(bastion.telemetry.audit, "VERIFY_PAGE", request.param)
    return int(request.param)


def _call(n: int, secret: str = "s3cr3t") -> CallRecord:
    return CallRecord(
        request_id=f"r{n}", started=1_800_000_000.0 + n, server="vs", method="tools/call", outcome="ok",
        seconds=0.01, upstream_seconds=0.005, upstream="fx", item="fx__echo", kind="tool", principal="admin",
        params={"name": "fx__echo", "arguments": {"text": secret}}, result={"content": [{"type": "text", "text": secret}]},
    )


async def _log(records: int = 6, chains: int = 2) -> tuple[MemoryAuditStore, AuditLog, list[AuditLog]]:
    store = MemoryAuditStore()
    keys = AuditKeys(os.urandom(32))
    writers = [AuditLog(store, keys, f"replica{i}", sign_interval=3600) for i in range(chains)]
    for n in range(records):
        for writer in writers:  # interleaved, as replicas write at once
            writer.call_finished(_call(n))
            await writer.flush(sign=n == records - 1)
    return store, writers[0], writers


async def test_an_untouched_log_of_several_writers_verifies() -> None:
    store, log, _ = await _log()
    verdict = await log.verify()
    assert verdict.ok and verdict.chains == 2 and verdict.records == 12 and verdict.unsigned_tail == 0
    assert all("s3cr3t" not in repr(e) for e in store.records)
    assert store.records[0].args_hmac == store.records[1].args_hmac  # same arguments, same keyed hash


def _first_bad(verdict_json: dict[str, object]) -> dict[str, object]:
    first = verdict_json["first_bad"]
    assert isinstance(first, dict)
    return first


def _of(store: MemoryAuditStore, chain: str, seq: int) -> AuditEntry:
    return next(e for e in store.records if e.chain == chain and e.seq == seq)


async def test_an_edited_record_is_named() -> None:
    store, log, _ = await _log()
    victim = _of(store, "replica0", 3)
    store.records[store.records.index(victim)] = replace(victim, outcome="denied")
    first = _first_bad((await log.verify()).as_json())
    assert (first["chain"], first["seq"], first["record_id"]) == ("replica0", 3, victim.id)
    assert "edited" in str(first["reason"])


async def test_a_deleted_record_is_named() -> None:
    store, log, _ = await _log()
    store.records.remove(_of(store, "replica1", 2))
    first = _first_bad((await log.verify()).as_json())
    assert (first["chain"], first["seq"]) == ("replica1", 3) and "expected seq 2" in str(first["reason"])


async def test_an_inserted_record_is_caught() -> None:
    store, log, writers = await _log()
    forged = replace(_of(store, "replica0", 2), seq=3, target="fx__other", id=999)
    store.records.append(forged)
    first = _first_bad((await log.verify()).as_json())
    assert first["chain"] == "replica0" and first["seq"] == 3


async def test_reordered_records_are_caught() -> None:
    store, log, _ = await _log()
    a, b = _of(store, "replica0", 2), _of(store, "replica0", 3)
    ia, ib = store.records.index(a), store.records.index(b)
    store.records[ia], store.records[ib] = replace(b, seq=2), replace(a, seq=3)
    first = _first_bad((await log.verify()).as_json())
    assert (first["chain"], first["seq"]) == ("replica0", 2)


async def test_a_truncated_tail_is_caught_by_the_signed_head() -> None:
    store, log, _ = await _log()
    store.records.remove(_of(store, "replica1", 6))
    store.records.remove(_of(store, "replica1", 5))
    first = _first_bad((await log.verify()).as_json())
    assert (first["chain"], first["seq"]) == ("replica1", 5) and "truncated" in str(first["reason"])


async def test_a_forged_head_signature_is_caught() -> None:
    store, log, _ = await _log()
    store.marks_[-1] = replace(store.marks_[-1], seq=7)
    assert not (await log.verify()).ok


async def test_retention_leaves_a_signed_checkpoint_and_the_rest_still_verifies() -> None:
    store, log, writers = await _log(records=4, chains=1)
    cutoff = _of(store, "replica0", 2).at
    removed = await store.prune(cutoff, lambda last: _checkpoint(log, last))
    assert removed == 1  # seq 1 was before the cutoff
    writers[0].call_finished(_call(10))
    await writers[0].flush(sign=True)
    assert (await log.verify()).ok
    store.records.remove(_of(store, "replica0", 2))  # deleting behind the checkpoint is still caught
    assert not (await log.verify()).ok


def _checkpoint(log: AuditLog, last: AuditEntry):  # type: ignore[no-untyped-def]
    from bastion.core.audit_chain import SignedMark, mark_message

    at = iso(1_900_000_000.0)
    signature = log.keys.sign(mark_message(last.chain, "checkpoint", last.seq, last.hash, at))
    return SignedMark(last.chain, "checkpoint", last.seq, last.hash, at, log.keys.key_id, signature)


async def test_admin_changes_and_refusals_are_recorded_and_a_full_queue_is_itself_audited() -> None:
    store = MemoryAuditStore()
    log = AuditLog(store, AuditKeys(os.urandom(32)), "r", max_queue=100)
    event = EdgeEvent("change", 1_800_000_000.0, "PATCH /api/v1/upstreams/{name}", "fx", "ok", 200, 0.01, principal="admin")
    for _ in range(150):
        log.edge_event(event)
    await log.flush(sign=True)
    actions = [e.action for e in store.records]
    assert actions.count("PATCH /api/v1/upstreams/{name}") == 100
    assert actions[-1] == "audit.overflow" and "50" in (store.records[-1].detail or "")
    assert (await log.verify()).ok


async def test_records_keep_the_stored_format_of_earlier_versions() -> None:
    """A record written now hashes and reads exactly as those written before the flush was made
    cheaper: the hash over the canonical JSON of its fields, keyed hashes of canonical JSON, and
    times as datetime formats them."""
    import hashlib
    import hmac
    import json
    from datetime import UTC, datetime

    from bastion.core.audit_chain import entry_hash

    store = MemoryAuditStore()
    keys = AuditKeys(b"k" * 32)
    log = AuditLog(store, keys, "replica0")
    call = replace(_call(1), started=1_800_000_000.9999996, seconds=0.0)
    log.call_finished(call)
    await log.flush()
    [entry] = await store.entries("replica0")
    hashed = {name: getattr(entry, name) for name in sorted(AuditEntry.__dataclass_fields__) if name not in ("hash", "id")}
    assert entry.hash == hashlib.sha256(json.dumps(hashed, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    assert entry.hash == entry_hash(entry) and entry.prev_hash == "0" * 64
    assert entry.at == datetime.fromtimestamp(call.started, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") == "2027-01-15T08:00:01.000000Z"
    hmac_key = keys._hmac  # the derived key, to recompute the keyed hash the old way
    arguments = json.dumps({"arguments": {"text": "s3cr3t"}, "name": "fx__echo"}, sort_keys=True, separators=(",", ":")).encode()
    assert entry.args_hmac == hmac.new(hmac_key, arguments, hashlib.sha256).hexdigest()


async def test_relinking_stored_entries_keeps_their_row_ids_and_hashes_every_field() -> None:
    from bastion.core.audit_chain import entry_hash, link

    store = (await _log(3, 1))[0]
    stored = [replace(e, id=100 + n) for n, e in enumerate(await store.entries("replica0"))]
    relinked = link(stored, "f" * 64)
    assert [e.id for e in relinked] == [100, 101, 102]
    assert relinked[0].prev_hash == "f" * 64 and relinked[1].prev_hash == relinked[0].hash
    assert all(e.hash == entry_hash(e) for e in relinked)
    assert relinked[0].hash != stored[0].hash  # the new link is part of the hash


async def test_calls_told_in_a_batch_make_the_same_records_as_calls_told_one_by_one() -> None:
    keys = AuditKeys(os.urandom(32))
    one_by_one, batched = AuditLog(MemoryAuditStore(), keys, "r"), AuditLog(MemoryAuditStore(), keys, "r")
    calls = [_call(1), replace(_call(2), outcome="denied", method="tools/list", params=None, result=None), _call(3, "other")]
    for call in calls:
        one_by_one.call_finished(call)
    batched.calls_finished(calls)
    await one_by_one.flush()
    await batched.flush()
    written = [await log.store.entries("r") for log in (one_by_one, batched)]
    assert written[0] == written[1] and len(written[0]) == 3
    assert written[1][0].args_hmac != written[1][2].args_hmac and written[1][1].args_hmac is None
    assert (await batched.verify()).ok


class _Unprintable:
    def __str__(self) -> str:
        raise ValueError("cannot be shown")


async def test_a_call_whose_arguments_cannot_be_hashed_is_recorded_without_them_and_the_batch_goes_on() -> None:
    log = AuditLog(MemoryAuditStore(), AuditKeys(os.urandom(32)), "r")
    bad = replace(_call(2), params={"name": "fx__echo", "arguments": {"x": _Unprintable()}})
    log.calls_finished([_call(1), bad, _call(3)])
    await log.flush()
    entries = await log.store.entries("r")
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].args_hmac is None and entries[1].detail == bastion.telemetry.audit.UNHASHED
    assert entries[0].args_hmac is not None and entries[2].args_hmac is not None
    assert (await log.verify()).ok


async def test_lone_surrogates_from_json_are_hashed_and_stored() -> None:
    """JSON may carry "\\ud800"; Python keeps it as a lone surrogate that UTF-8 refuses. Arguments
    and results with one are hashed (distinctly), and an error text with one is stored."""
    log = AuditLog(MemoryAuditStore(), AuditKeys(os.urandom(32)), "r")
    calls = [
        replace(_call(n), params={"name": "fx__echo", "arguments": {"x": text}}, result={"content": [{"text": text}]})
        for n, text in ((1, "\ud800"), (2, "\ud801"))
    ]
    calls.append(replace(_call(3), outcome="error", error="Bad request: \ud800"))
    log.calls_finished(calls)
    await log.flush(sign=True)
    entries = await log.store.entries("r")
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].args_hmac and entries[1].args_hmac and entries[0].args_hmac != entries[1].args_hmac
    assert entries[0].result_hmac != entries[1].result_hmac
    assert entries[2].detail is not None and entries[2].detail.startswith("Bad request: ")
    entries[2].detail.encode()  # storable as UTF-8
    assert (await log.verify()).ok
