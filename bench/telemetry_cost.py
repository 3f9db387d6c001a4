"""Benchmark: the CPU each piece of observability adds to one call, in process, on the real code path.

Drives the real pipeline (`build_pipeline`: observe, authenticate, resolve, policy, rate limit,
route, validate, dispatch) N times with an in-memory upstream that answers at once, and prints the
process CPU time per call with nothing on, then with each piece on by itself: metrics, the JSON
INFO line (to /dev/null), audit + usage recording, the audit and usage flushes (SQLite in a temp
dir, CPU of the flush per record), tracing (the OTLP/HTTP exporter to a receiver in another
process; export and encoding are counted, they run in this process's threads) sampled at 100% and
at 0%, and everything together as the gateway runs it (observers told of calls in batches, the
audit log and usage written to SQLite every 500 calls inside the measured time, as the gateway's
periodic flush does).

    python bench/telemetry_cost.py [--calls 5000] [--rounds 3] [--only tracing]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from otlp_sink import start_sink

from bastion.app.observability import CALL_BATCH, CALL_BATCH_DELAY
from bastion.core.grants import Grants
from bastion.core.models import CatalogItem, Discovery, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.ports import CallHooks, CallObserver
from bastion.core.snapshot import build_snapshot
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.base import Next
from bastion.pipeline.build import build_pipeline
from bastion.pipeline.context import CallContext, Credential, Principal
from bastion.pipeline.observe import CallBatch
from bastion.store.memory import MemoryRateLimiter
from bastion.store.sql.audit import SqlAuditStore
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import make_engine
from bastion.store.sql.usage import SqlUsageStore
from bastion.telemetry.audit import AuditLog
from bastion.telemetry.audit_keys import AuditKeys
from bastion.telemetry.logging import CallLog, JsonFormatter
from bastion.telemetry.metrics import Metrics
from bastion.telemetry.tracing import Tracing
from bastion.telemetry.usage import UsageRecorder

TOKEN = Principal(id="token:t1", kind="token", grants=Grants(frozenset({"vs"}), frozenset({"mcp"})), token="t1", user="u1")
RESULT = {"content": [{"type": "text", "text": "hello"}], "isError": False}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Upstreams:
    async def request(
        self, upstream: str, method: str, params: dict[str, Any], *, user: str | None, timeout: float, hooks: CallHooks | None = None,
        caller: str | None = None, client: str | None = None,
    ) -> dict[str, Any]:
        return {**RESULT}

    async def discover(self, spec: UpstreamSpec) -> Discovery:
        raise NotImplementedError

    def asks_mid_call(self, upstream: str) -> bool:
        return False


class Tokens:
    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        return TOKEN


def snapshot() -> Any:
    echo = CatalogItem(
        upstream="up", kind="tool", key="echo", gateway_name="up__echo",
        definition={"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    )
    upstream = Upstream(spec=UpstreamSpec(name="up", transport="stdio", command="x", pin="off"))
    built = build_snapshot([upstream], [echo], [VirtualServerSpec(name="vs", upstreams=("up",))])
    return lambda: built


def pipeline(observers: Sequence[CallObserver] | CallBatch = (), tracing: Tracing | None = None) -> Next:
    return build_pipeline(
        snapshot(), Upstreams(), Authenticator(Tokens()), timeout=30, server_info={"name": "bastion"},
        limiter=MemoryRateLimiter(), observers=observers, tracer=tracing.tracer if tracing is not None else None,
    )


def context(traced: bool) -> CallContext:
    meta: dict[str, Any] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    if traced:
        meta["traceparent"] = TRACEPARENT
    params = {"name": "up__echo", "arguments": {"text": "hello"}, "_meta": meta}
    return CallContext(
        server="vs", method="tools/call", params=params, credential=Credential("Bearer t1", "127.0.0.1"), address="127.0.0.1"
    )


Flush = Callable[[], Awaitable[object]]
FLUSH_EVERY = 500
"""Calls between the periodic flushes of the "all" rows (the gateway flushes every second: ~300-3,000 calls)."""


async def _calls(run: Next, calls: int, traced: bool, flush: Flush | None) -> None:
    for n in range(1, calls + 1):
        await run(context(traced))
        if flush is not None and n % FLUSH_EVERY == 0:
            await flush()


async def drive(run: Next, calls: int, traced: bool = False, flush: Flush | None = None) -> float:
    """CPU seconds per call over `calls` calls (after a warm-up of a tenth); with `flush`, awaited
    every FLUSH_EVERY calls and at the end, inside the measured time."""
    await _calls(run, max(50, calls // 10), traced, flush)
    if flush is not None:
        await flush()
    gc.collect()
    start = time.process_time()
    await _calls(run, calls, traced, flush)
    if flush is not None:
        await flush()
    return (time.process_time() - start) / calls


@contextmanager
def json_log_to_devnull() -> Iterator[None]:
    root = logging.getLogger()
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(JsonFormatter("bench"))
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        handler.stream.close()


@contextmanager
def otlp_receiver(sampler: str) -> Iterator[None]:
    sink, url = start_sink()
    saved = dict(os.environ)
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{url}/v1/traces"
    os.environ["OTEL_TRACES_SAMPLER"] = sampler
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = "1000000"  # every span exported and counted, none dropped
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sink.terminate()
        sink.wait()


async def traced_cost(
    calls: int, sampler: str, observers: Sequence[CallObserver] | CallBatch = (), flush: Flush | None = None
) -> float:
    """Per call, including the exporter's work: the spans are exported inside the measured time."""
    with otlp_receiver(sampler):
        tracing = Tracing("bench")

        async def flushed() -> None:
            if flush is not None:
                await flush()
            tracing.flush()

        try:
            return await drive(pipeline(observers, tracing), calls, traced=True, flush=flushed)
        finally:
            tracing.close()


@asynccontextmanager
async def sqlite_recorders() -> AsyncIterator[tuple[AuditLog, UsageRecorder, Flush]]:
    """The audit log and usage recorder on a fresh SQLite database, and their flush."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade(engine)
        keys = AuditKeys(os.urandom(32))
        audit = AuditLog(SqlAuditStore(engine), keys, "bench", max_queue=10**7)
        usage = UsageRecorder(SqlUsageStore(engine), "bench", keys.digest)

        async def flush() -> None:
            await audit.flush()
            await usage.flush()

        try:
            yield audit, usage, flush
        finally:
            await engine.dispose()


async def flush_costs(calls: int) -> tuple[float, float]:
    """CPU per record of the audit flush and per call of the usage flush, into SQLite."""
    async with sqlite_recorders() as (audit, usage, flush):
        run = pipeline([audit, usage])
        for _ in range(100):
            await run(context(False))
        await flush()
        costs = []
        for recorder in (audit, usage):
            for _ in range(calls):
                await run(context(False))
            gc.collect()
            start = time.process_time()
            await recorder.flush()
            costs.append((time.process_time() - start) / calls)
        await flush()
        return costs[0], costs[1]


def recorders() -> tuple[AuditLog, UsageRecorder]:
    keys = AuditKeys(os.urandom(32))
    from bastion.store.memory_audit import MemoryAuditStore, MemoryUsageStore

    return AuditLog(MemoryAuditStore(), keys, "bench", max_queue=10**8), UsageRecorder(MemoryUsageStore(), "bench", keys.digest)


def gateway_batch(audit: AuditLog, usage: UsageRecorder) -> CallBatch:
    """Every observer, told in batches as the gateway tells them (the flushes drain the batch)."""
    batch = CallBatch([Metrics(), CallLog("bench"), audit, usage], size=CALL_BATCH, delay=CALL_BATCH_DELAY)
    audit.catch_up = usage.catch_up = batch.drain
    return batch


async def one_round(calls: int, only: str | None) -> dict[str, float]:
    figures: dict[str, float] = {}

    def wanted(name: str) -> bool:
        return only is None or only in name

    figures["off"] = await drive(pipeline(), calls)
    if wanted("metrics"):
        figures["metrics"] = await drive(pipeline([Metrics()]), calls)
    if wanted("log"):
        with json_log_to_devnull():
            figures["log line"] = await drive(pipeline([CallLog("bench")]), calls)
        logging.getLogger().setLevel(logging.WARNING)
        figures["log line (INFO off)"] = await drive(pipeline([CallLog("bench")]), calls)
    if wanted("audit"):
        figures["audit+usage recording"] = await drive(pipeline(list(recorders())), calls)
        audit_flush, usage_flush = await flush_costs(calls)
        figures["audit flush per record"] = figures["off"] + audit_flush
        figures["usage flush per call"] = figures["off"] + usage_flush
    if wanted("tracing"):
        figures["tracing 100%"] = await traced_cost(calls, "parentbased_always_on")
        figures["tracing 0%"] = await traced_cost(calls, "always_off")
    if only is None:
        # Everything as the gateway runs it: observers told in batches, audit and usage written to
        # SQLite every FLUSH_EVERY calls.
        with json_log_to_devnull():
            async with sqlite_recorders() as (audit, usage, flush):
                batch = gateway_batch(audit, usage)
                figures["all but tracing"] = await drive(pipeline(batch), calls, flush=flush)
            async with sqlite_recorders() as (audit, usage, flush):
                figures["all, tracing 100%"] = await traced_cost(calls, "parentbased_always_on", gateway_batch(audit, usage), flush)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="Only the pieces whose name contains this (metrics, log, audit, tracing)")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    rounds: list[dict[str, float]] = [asyncio.run(one_round(args.calls, args.only)) for _ in range(args.rounds)]
    print(f"load average {os.getloadavg()[0]:.2f}; {args.calls} calls x {args.rounds} rounds; CPU us per call, median (min)")
    base = sorted(r["off"] for r in rounds)[len(rounds) // 2]
    for name in rounds[0]:
        values = sorted(r[name] for r in rounds)
        median = values[len(values) // 2]
        added = "" if name == "off" else f"  added {(median - base) * 1e6:>7.1f} us"
        print(f"{name:<26} {median * 1e6:>8.1f} us ({values[0] * 1e6:.1f}){added}")


if __name__ == "__main__":
    main()

