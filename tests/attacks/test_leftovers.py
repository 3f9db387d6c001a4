"""Leftovers: small defects found late, each written failing first.

- A stdio upstream's stderr lines were logged at INFO: noisy, and an upstream may print its own
  secrets there. They are DEBUG now; the tail kept for the "not an MCP server" warning is unchanged.
- The audit's since/until were turned into text with strftime, which writes year 999 as "999" and
  year 0 as "0": `since=0001-01-01T00:00:00+14:00` (year 0 in UTC) or `since=0999-01-01` compared
  as text after every record, and the filter was silently wrong. A time the calendar cannot hold in
  UTC is a 400 naming the parameter; an early one is written with four digits and filters right.
- An `audit.unstorable` record (in place of one the database refused) kept no actor: who did it was
  lost. It keeps the refused record's actor and outcome now, unless one of those is what the database
  refuses, and then it is written with Bastion's own text only, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from bastion.core.observation import EdgeEvent
from bastion.upstream.transports import stderr_tail
from tests.attacks.test_audit_poisoning import _stored, narrowed
from tests.attacks.test_stdio_stderr_flood import run_to_exit
from tests.harness import TOKEN, Running, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("leftovers")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        for name in ("left-1", "left-2", "left-3"):
            assert (await running.api.post("/api/v1/teams", json={"name": name})).status_code == 201
        yield running


async def _bad_request(gateway: Running, path: str, params: dict[str, str], said: str) -> None:
    response = await gateway.api.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert said in response.json()["detail"], response.json()


# -- audit and usage time filters ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/usage"])
@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),  # year 0 in UTC
        ({"until": "0001-01-01T00:00:00+00:01"}, "until"),
        ({"until": "9999-12-31T23:59:59-14:00"}, "until"),  # year 10000 in UTC
        ({"since": "10000-01-01T00:00:00Z"}, "since"),
        ({"since": "+12026-01-01"}, "since"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"since": "2026-12-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"since": "yesterday"}, "since"),
    ],
)
async def test_a_time_the_calendar_cannot_hold_in_utc_is_a_400_naming_it(
    gateway: Running, path: str, params: dict[str, str], said: str
) -> None:
    await _bad_request(gateway, path, params, said)


async def _audit_seqs(gateway: Running, **params: str) -> list[int]:
    """The three team creations the fixture made (seq 1 to 3), as far as these filters find them."""
    response = await gateway.api.get("/api/v1/audit", params={"action": "POST /api/v1/teams", **params})
    assert response.status_code == 200, response.text
    return sorted(r["seq"] for r in response.json()["items"])


async def test_early_and_late_times_filter_the_audit_right(gateway: Running) -> None:
    everything = [1, 2, 3]
    assert await _audit_seqs(gateway) == everything
    for since in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00-14:00", "0999-06-01", "1969-12-31T23:59:59Z"):
        assert await _audit_seqs(gateway, since=since) == everything, since
    for until in ("0999-06-01T00:00:00Z", "0001-01-02", "1970-01-01T00:00:00Z"):
        assert await _audit_seqs(gateway, until=until) == [], until
    assert await _audit_seqs(gateway, until="9999-12-31T23:59:59Z", since="0001-01-01") == everything
    for group_by in ("item", "minute", "hour", "day"):
        widest = {"since": "0001-01-01T00:00:00-14:00", "until": "9999-12-31T23:59:59+14:00", "group_by": group_by}
        assert (await gateway.api.get("/api/v1/usage", params=widest)).status_code == 200, group_by


async def test_a_naive_time_is_utc(gateway: Running) -> None:
    records = (await gateway.api.get("/api/v1/audit", params={"action": "POST /api/v1/teams"})).json()["items"]
    second = next(r for r in records if r["seq"] == 2)["at"]  # e.g. 2026-12-07T04:10:00.123456Z
    assert await _audit_seqs(gateway, since=second.removesuffix("Z")) == [2, 3]
    assert await _audit_seqs(gateway, since=second.replace("Z", "+01:00")) == [1, 2, 3]
    assert await _audit_seqs(gateway, until=second.replace("Z", "-01:00")) == [1, 2, 3]


async def test_the_cli_export_says_which_time_is_wrong(gateway: Running) -> None:
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost"}
    args = ["audit", "export", "--since", "0001-01-01T00:00:00+14:00"]
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, args, env=env))
    assert result.exit_code != 0 and result.stdout == ""
    assert "since" in result.stderr and "Traceback" not in result.stderr, result.stderr


# -- the actor of an unstorable audit record -----------------------------------------------


def _by(user: str, target: str) -> EdgeEvent:
    return EdgeEvent(
        kind="change", started=time.time(), action="POST /api/v1/teams", target=target, outcome="denied",
        status=403, seconds=0.01, principal=f"user:{user}", user=user, token="tok-1", address="192.0.2.7",
    )


async def test_an_unstorable_record_keeps_its_actor_and_outcome() -> None:
    async with narrowed("ALTER TABLE audit_records ALTER COLUMN target TYPE varchar(10)") as (store, audit):
        for target in ("before", "x" * 50, "after"):
            audit.edge_event(_by("ann", target))
        assert await audit.flush(sign=True) == 3
        before, note, after = await _stored(store)
        assert (note.action, note.target, note.seq) == ("audit.unstorable", "", 2)
        assert (note.actor_user, note.actor_token, note.actor_client, note.actor_address, note.outcome) == (
            "ann", "tok-1", "user:ann", "192.0.2.7", "denied"
        )
        assert note.replica == before.replica and before.at <= note.at <= after.at
        assert "x" * 11 not in (note.detail or "") and "could not be stored" in (note.detail or "")
        assert (await audit.verify()).ok


async def test_an_unstorable_record_whose_actor_is_the_refused_value_is_set_aside_without_it() -> None:
    async with narrowed("ALTER TABLE audit_records ALTER COLUMN actor_user TYPE varchar(5)") as (store, audit):
        for user in ("ann", "a-user-too-long-for-the-column", "bob"):
            audit.edge_event(_by(user, "t"))
        assert await audit.flush(sign=True) == 3
        audit.edge_event(_by("cy", "later"))
        assert await audit.flush(sign=True) == 1  # the writer goes on
        written = await _stored(store)
        assert [e.actor_user for e in written] == ["ann", None, "bob", "cy"]
        note = written[1]
        assert note.action == "audit.unstorable" and note.outcome == "error"
        assert (note.actor_token, note.actor_client, note.actor_address) == (None, None, None)
        assert "a-user-too-long" not in (note.detail or "")
        assert (await audit.verify()).ok


# -- a stdio upstream's stderr -------------------------------------------------------------

_TALKER = """
import sys
sys.stderr.write("connecting with api key sk-upstream-secret-123\\n")
sys.stderr.write("stderr done\\n")
sys.stderr.flush()
"""


async def test_a_stdio_upstreams_stderr_is_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    await run_to_exit("talker", _TALKER, "stderr done", caplog)
    lines = [r for r in caplog.records if r.getMessage().startswith("[talker]")]
    assert {r.levelno for r in lines} == {logging.DEBUG}, [(r.levelname, r.getMessage()) for r in lines]
    assert "sk-upstream-secret-123" in stderr_tail("talker")  # still kept for the one failure warning
