"""Metrics, logs, audit and usage with real traffic through a real upstream."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import MCPError
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, insert, select, update

import bastion.telemetry.audit
from bastion.core.usage import UsageQuery, UsageRow
from bastion.store.sql.tables import audit_records
from tests.harness import TOKEN, Running, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

PLANTED = "planted-secret-7f3a9c"
SCRAPE = "scrape-token-for-tests-0123456789"


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _requests(text: str, **labels: str) -> float:
    total = 0.0
    for key, value in _samples(text, "bastion_requests_total").items():
        if all(dict(key).get(k) == v for k, v in labels.items()):
            total += value
    return total


async def _metrics(gateway: Running, token: str = SCRAPE, accept: str | None = None) -> httpx2.Response:
    headers = {"authorization": f"Bearer {token}"}
    if accept:
        headers["accept"] = accept
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        return await http.get("/metrics", headers=headers)


@pytest.fixture
async def observed(tmp_path: Path) -> Running:  # type: ignore[misc]
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", metrics_token=SCRAPE, log_level="INFO")
    async with serve(settings) as gateway:
        await gateway.register(stdio_fixture("fx") | {"env": {"FIXTURE_SECRET": PLANTED}})
        limits = {"tools": {"fx__add": "1/day"}}
        await gateway.create_server({"name": "vs", "tools": ["fx__echo", "fx__add", "fx__fail"], "rate_limits": limits})
        yield gateway


async def test_a_call_and_a_refusal_move_the_request_counters(observed: Running) -> None:
    before = (await _metrics(observed)).text
    assert _requests(before, server="vs", item="fx__add") == 0
    async with observed.client("vs", mode="legacy") as client:
        assert not (await client.call_tool("fx__add", {"a": 1, "b": 2})).is_error
        with pytest.raises(MCPError):
            await client.call_tool("fx__add", {"a": 1, "b": 2})
        assert (await client.call_tool("fx__fail", {"message": PLANTED})).is_error
    text = (await _metrics(observed)).text
    assert _requests(text, server="vs", method="tools/call", upstream="fx", item="fx__add", outcome="ok") == 1
    assert _requests(text, server="vs", method="tools/call", item="fx__add", outcome="rate_limited") == 1
    assert _requests(text, server="vs", item="fx__fail", outcome="tool_error") == 1
    assert _samples(text, "bastion_rate_limited_total")[(("server", "vs"),)] == 1
    assert _samples(text, "bastion_upstream_up")[(("upstream", "fx"),)] == 1
    assert _samples(text, "bastion_catalog_items")[(("kind", "tool"),)] >= 3
    upstream_time = _samples(text, "bastion_upstream_duration_seconds_count")
    assert upstream_time[(("method", "tools/call"), ("upstream", "fx"))] == 2  # the refused call never went
    assert any(k for k in _samples(text, "bastion_build_info"))
    assert PLANTED not in text


async def test_calls_reach_the_observers_in_batches_a_scrape_sees_them_at_once_a_log_line_soon(
    observed: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway tells its observers of finished calls a batch at a time: a scrape right after a
    call still counts it (the scrape drains the batch), and with no reader at all the call's log
    line comes within the batch delay, stamped with the time the call finished."""
    caplog.set_level(logging.INFO)
    async with observed.client("vs", mode="2026-07-28") as client:
        await client.call_tool("fx__echo", {"text": "one"})
        assert _requests((await _metrics(observed)).text, item="fx__echo", outcome="ok") == 1
        caplog.clear()
        await client.call_tool("fx__echo", {"text": "two"})
        returned = time.time()
        lines: list[logging.LogRecord] = []
        for _ in range(200):
            lines = [r for r in caplog.records if r.name == "bastion.calls"]
            if lines:
                break
            await anyio.sleep(0.01)
        assert len(lines) == 1 and getattr(lines[0], "fields", {}).get("item") == "fx__echo"
        assert lines[0].created <= returned  # when the call finished, not when the batch was told


async def test_metrics_need_the_scrape_token_or_an_admin(observed: Running) -> None:
    assert (await _metrics(observed, token="wrong")).status_code == 401
    async with httpx2.AsyncClient(base_url=observed.base_url) as http:
        assert (await http.get("/metrics")).status_code == 401
    assert (await _metrics(observed, token=TOKEN)).status_code == 200  # the admin token
    created = await observed.api.post("/api/v1/tokens", json={"name": "t", "servers": ["vs"]})
    assert (await _metrics(observed, token=created.json()["token"])).status_code == 403
    text = (await _metrics(observed)).text
    assert _samples(text, "bastion_auth_failures_total")[(("reason", "bad_credential"),)] >= 2
    open_metrics = await _metrics(observed, accept="application/openmetrics-text; version=1.0.0")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")


async def test_calls_and_changes_are_audited_without_their_values(
    observed: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with observed.client("vs", mode="2026-07-28") as client:
        await client.call_tool("fx__echo", {"text": PLANTED})
        await client.call_tool("fx__echo", {"text": PLANTED})
    await observed.api.patch("/api/v1/servers/vs", json={"description": "changed"})
    await observed.api.patch("/api/v1/upstreams/fx", json={"env": {"FIXTURE_SECRET": PLANTED + "2"}})
    async with httpx2.AsyncClient(base_url=observed.base_url) as http:
        await http.get("/api/v1/upstreams", headers={"authorization": "Bearer nope"})
    listed = await observed.api.get("/api/v1/audit", params={"limit": "100"})
    assert listed.status_code == 200, listed.text
    records = listed.json()["items"]
    calls = [r for r in records if r["action"] == "tools/call" and r["target"] == "fx__echo"]
    assert len(calls) == 2
    assert calls[0]["args_hmac"] == calls[1]["args_hmac"] and calls[0]["result_hmac"]  # same args, same hash
    assert calls[0]["outcome"] == "ok" and calls[0]["actor_client"] == "admin" and calls[0]["server"] == "vs"
    actions = {r["action"] for r in records}
    assert {"PATCH /api/v1/servers/{name}", "PATCH /api/v1/upstreams/{name}", "POST /api/v1/upstreams"} <= actions
    refused = [r for r in records if r["action"] == "GET /api/v1/upstreams"]
    assert refused and refused[0]["outcome"] == "denied"
    # Nothing anywhere shows the planted value: audit records, metrics, log lines.
    assert PLANTED not in json.dumps(records)
    assert PLANTED not in (await _metrics(observed)).text
    lines = [r for r in caplog.records if r.name == "bastion.calls"]
    fields = [getattr(r, "fields", {}) for r in lines]
    assert any(f.get("item") == "fx__echo" and f.get("outcome") == "ok" and f.get("request_id") for f in fields)
    assert all(PLANTED not in r.getMessage() and PLANTED not in json.dumps(vars(r), default=str) for r in caplog.records)
    verdict = (await observed.api.post("/api/v1/audit/verify")).json()
    assert verdict["ok"] is True and verdict["records"] >= 6 and verdict["unsigned_tail"] == 0


async def test_a_facade_call_is_audited_once_as_the_call_it_is_not_as_a_change(
    observed: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await observed.create_server({"name": "all", "upstreams": ["fx"]})
    changes_before = sum(_samples((await _metrics(observed)).text, "bastion_admin_changes_total").values())
    called = await observed.api.post("/api/v1/servers/all/tools/fx__echo", json={"text": PLANTED})
    assert called.status_code == 200 and called.json()["content"][0]["text"] == PLANTED
    prompted = await observed.api.post("/api/v1/servers/all/prompts/fx__greet", json={"name": "ada"})
    assert prompted.status_code == 200, prompted.text
    records = (await observed.api.get("/api/v1/audit", params={"limit": "100"})).json()["items"]
    used = sorted((r["action"], r["target"], r["outcome"]) for r in records if r["server"] == "all")
    assert used == [("prompts/get", "fx__greet", "ok"), ("tools/call", "fx__echo", "ok")]
    # Not a second time as a configuration change (as before: the edge took every POST for one).
    assert not [r for r in records if r["action"].startswith("POST /api/v1/servers/{name}/")]
    text = (await _metrics(observed)).text
    assert sum(_samples(text, "bastion_admin_changes_total").values()) == changes_before
    assert _requests(text, server="all", method="tools/call", item="fx__echo", outcome="ok") == 1
    # Each still has its REST log line (the tool call's from the facade's fast path).
    lines = {r.getMessage() for r in caplog.records if r.name == "bastion.rest"}
    assert {"POST /api/v1/servers/{name}/tools/{tool} -> 200", "POST /api/v1/servers/{name}/prompts/{prompt} -> 200"} <= lines
    assert PLANTED not in json.dumps(records)


async def _verdict(gateway: Running) -> dict[str, object]:
    response = await gateway.api.post("/api/v1/audit/verify")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("page", [5000, 2], ids=["one-page", "pages-of-2"])
async def test_tampering_in_the_database_is_detected_and_the_record_named(
    observed: Running, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Verification reads each chain a page at a time: the same tampering is caught across pages.
    monkeypatch.setattr(bastion.telemetry.audit, "VERIFY_PAGE", page)
    async with observed.client("vs", mode="2026-07-28") as client:
        for n in range(4):
            await client.call_tool("fx__echo", {"text": f"call {n}"})
    assert (await _verdict(observed))["ok"] is True
    engine = observed.bastion.engine
    chain = observed.bastion.shared.replica
    t = audit_records.c

    async def row(seq: int) -> dict[str, object]:
        async with engine.connect() as conn:
            found = (await conn.execute(select(audit_records).where(t.chain == chain, t.seq == seq))).one()
        return dict(found._mapping)

    async def run(*statements: object) -> None:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(statement)  # type: ignore[call-overload]

    def first_bad(verdict: dict[str, object]) -> dict[str, object]:
        assert verdict["ok"] is False
        first = verdict["first_bad"]
        assert isinstance(first, dict)
        return first

    # Edited: the record itself is named.
    third = await row(3)
    await run(update(audit_records).where(t.id == third["id"]).values(outcome="denied"))
    assert first_bad(await _verdict(observed))["record_id"] == third["id"]
    await run(update(audit_records).where(t.id == third["id"]).values(outcome=third["outcome"]))
    assert (await _verdict(observed))["ok"] is True

    # Reordered: two records swap places.
    fourth = await row(4)
    await run(
        update(audit_records).where(t.id == third["id"]).values(seq=-1),
        update(audit_records).where(t.id == fourth["id"]).values(seq=3),
        update(audit_records).where(t.id == third["id"]).values(seq=4),
    )
    assert first_bad(await _verdict(observed))["seq"] == 3
    await run(
        update(audit_records).where(t.id == third["id"]).values(seq=-1),
        update(audit_records).where(t.id == fourth["id"]).values(seq=4),
        update(audit_records).where(t.id == third["id"]).values(seq=3),
    )
    assert (await _verdict(observed))["ok"] is True

    # Deleted: the gap is named.
    second = await row(2)
    await run(delete(audit_records).where(t.id == second["id"]))
    bad = first_bad(await _verdict(observed))
    assert bad["seq"] == 3 and "expected seq 2" in str(bad["reason"])
    await run(insert(audit_records).values(**second))
    assert (await _verdict(observed))["ok"] is True

    # Truncated: the tail after the last signed head is gone (checked without writing anything new,
    # which would turn the cut tail into a gap, caught as above).
    audit = observed.bastion.telemetry.audit  # type: ignore[union-attr]
    await audit.flush(sign=True)
    async with engine.connect() as conn:
        last = (await conn.execute(select(func.max(t.seq)).where(t.chain == chain))).scalar_one()
    await run(delete(audit_records).where(t.chain == chain, t.seq >= last - 1))
    bad = first_bad((await audit.verify()).as_json())
    assert bad["seq"] == last - 1 and "truncated" in str(bad["reason"])


async def test_every_kind_of_admin_change_and_sign_in_is_audited(observed: Running) -> None:
    api = observed.api
    password = "correct horse battery staple 42"
    done = [
        await api.patch("/api/v1/tools/fx__echo", json={"description": "Echo"}),  # catalog
        await api.patch("/api/v1/servers/vs", json={"policy": {"default": "allow"}}),  # policy
        await api.patch("/api/v1/servers/vs", json={"rate_limits": {"server": "100/minute"}}),  # rate limits
        await api.post("/api/v1/servers", json={"name": "vs2", "upstreams": ["fx"]}),
        await api.delete("/api/v1/servers/vs2"),
        await api.post("/api/v1/upstreams/fx/refresh"),
        await api.post("/api/v1/users", json={"email": "ada@example.com", "password": password}),
        await api.post("/api/v1/teams", json={"name": "ops"}),
        await api.post("/api/v1/teams/ops/members", json={"user": "ada@example.com"}),
        await api.post("/api/v1/vault/rotate"),
    ]
    assert all(r.status_code < 300 for r in done), [r.text for r in done if r.status_code >= 300]
    user = done[6].json()
    token = (await api.post("/api/v1/tokens", json={"name": "ci", "servers": ["vs"]})).json()
    assert (await api.delete(f"/api/v1/tokens/{token['id']}")).status_code == 204
    async with httpx2.AsyncClient(base_url=observed.base_url) as http:
        assert (await http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": password})).status_code == 200
        assert (await http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong"})).status_code == 401
    records = (await api.get("/api/v1/audit", params={"limit": "200"})).json()["items"]
    seen = {(r["action"], r["target"], r["outcome"]) for r in records}
    expected = {
        ("POST /api/v1/upstreams", "fx", "ok"),
        ("PATCH /api/v1/tools/{name}", "fx__echo", "ok"),
        ("PATCH /api/v1/servers/{name}", "vs", "ok"),
        ("POST /api/v1/servers", "vs2", "ok"),
        ("DELETE /api/v1/servers/{name}", "vs2", "ok"),
        ("POST /api/v1/upstreams/{name}/refresh", "fx", "ok"),
        ("POST /api/v1/users", f"{user['id']}/ada@example.com", "ok"),
        ("POST /api/v1/teams", "ops", "ok"),
        ("POST /api/v1/teams/{name}/members", "ops/ada@example.com", "ok"),
        ("POST /api/v1/vault/rotate", "", "ok"),
        ("POST /api/v1/tokens", f"{token['id']}/ci", "ok"),
        ("DELETE /api/v1/tokens/{id}", token["id"], "ok"),
        ("POST /api/v1/auth/login", "ada@example.com", "ok"),
        ("POST /api/v1/auth/login", "ada@example.com", "denied"),
    }
    assert expected <= seen, expected - seen
    details = {r["detail"] for r in records if r["action"] == "PATCH /api/v1/servers/{name}"}
    assert {"HTTP 200; fields: policy", "HTTP 200; fields: rate_limits"} <= details
    assert password not in json.dumps(records) and token["token"] not in json.dumps(records)
    assert {r["detail"] for r in records if r["action"] == "POST /api/v1/users"} == {"HTTP 201; fields: email, password; role: viewer"}
    assert all(r["actor_client"] == "admin" for r in records if r["action"].startswith(("PATCH", "DELETE")))


async def test_an_upstream_that_is_not_mcp_is_one_clear_line_with_its_stderr_not_a_traceback(
    gateway: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    script = "import sys; print('hello, I am not MCP'); sys.stderr.write('error: missing API_KEY\\n'); sys.stderr.flush()"
    body = {"name": "bad", "transport": "stdio", "command": sys.executable, "args": ["-c", script]}
    refused = await gateway.api.post("/api/v1/upstreams", json=body)
    assert refused.status_code == 502 and "does not speak MCP" in refused.json()["detail"]
    assert "API_KEY" not in refused.text  # the child's stderr is for the operator's log, not the API
    lines = [r for r in caplog.records if r.name == "bastion.upstream" and r.levelno >= logging.WARNING]
    assert any("does not speak MCP" in r.getMessage() and "missing API_KEY" in r.getMessage() for r in lines), lines
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in caplog.text


async def test_retention_prunes_old_usage_and_audit_behind_a_signed_checkpoint(observed: Running) -> None:
    telemetry = observed.bastion.telemetry
    assert telemetry is not None
    async with observed.client("vs", mode="2026-07-28") as client:
        await client.call_tool("fx__echo", {"text": "before"})
    old = UsageRow("minute", "2020-01-01T00:00:00+00:00", "gone", "vs", "fx", "tool", "fx__echo", calls=7)
    await telemetry.usage_store.save([old])
    old.calls, old.callers = 9, {"c1", "c2"}
    await telemetry.usage_store.save([old])  # the writer's own row: updated in place
    [saved] = await telemetry.usage_store.query(UsageQuery("2019-01-01", "2021-01-01", "minute"))
    assert saved.calls == 9 and saved.callers == {"c1", "c2"} and saved.latency == old.latency
    await telemetry.apply_retention()
    rows = await telemetry.usage_store.query(UsageQuery("2019-01-01", "2021-01-01", "minute"))
    assert rows == []
    await telemetry.audit.flush(sign=True)
    removed = await telemetry.audit.prune(days=0)  # everything so far: a checkpoint per chain
    assert removed > 0
    async with observed.client("vs", mode="2026-07-28") as client:
        await client.call_tool("fx__echo", {"text": "after"})
    verdict = await _verdict(observed)
    assert verdict["ok"] is True, verdict
    records = (await observed.api.get("/api/v1/audit", params={"action": "tools/call"})).json()["items"]
    assert len(records) == 1
