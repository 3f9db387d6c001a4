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
- An admin form's outcome travels to the next page in a cookie. It was cut at 1,000 characters, but
  JSON wrote each non-ASCII one as a 6-byte escape, so a long message (an error echoing a name in
  another script) made a cookie the browser drops (over 4,096 bytes) and Bastion's reader refused
  past 4,000: the message vanished. It is cut to fit the cookie now, with an ellipsis.
- REST listings read paging parameters each its own way: the audit took `limit=0` as 100 and clamped
  a larger one to 1,000, the registry search clamped any limit into 1..500, `/v0.1/servers` took any
  text as a cursor, and the other lists ignored `limit` and `cursor`, so a client asking for a page
  silently got everything. Now a value a listing cannot take is a 400 naming the parameter, and
  every list that holds its items at once pages by `offset` and `limit` with a `total`, as the
  catalog does.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest
from click.testing import CliRunner
from starlette.requests import Request
from starlette.responses import Response

from bastion.cli.main import cli
from bastion.core.observation import EdgeEvent
from bastion.upstream.transports import stderr_tail
from bastion.web.admin.ui import FLASH, _flash_of, back
from tests.attacks.test_audit_poisoning import _stored, narrowed
from tests.attacks.test_stdio_stderr_flood import run_to_exit
from tests.harness import TOKEN, Running, serve, settings_for
from tests.ui_sign_in import sign_in_ui

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("leftovers")
    settings = settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", admin_email=ADMIN, admin_password=PASSWORD)
    async with serve(settings) as running:
        for name in ("left-1", "left-2", "left-3"):
            assert (await running.api.post("/api/v1/teams", json={"name": name})).status_code == 201
        await running.create_server({"name": "left"})
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


# -- long admin UI messages ---------------------------------------------------------------

COOKIE_MAX = 4096
"""What every browser keeps of one cookie, its name, value and attributes together (RFC 6265 6.1)."""


def _shown_after(redirect: Response) -> dict[str, str]:
    """What the next page shows of the flash cookie set by a redirect, as a browser carries it."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in redirect.raw_headers]
    (cookie,) = [v for k, v in headers if k == "set-cookie" and v.startswith(f"{FLASH}=")]
    assert len(cookie.encode()) <= COOKIE_MAX, len(cookie)  # else the browser drops it
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    return _flash_of(Request({"type": "http", "headers": [(b"cookie", f"{FLASH}={value}".encode())]}))


@pytest.mark.parametrize(
    "text", ["a" * 5000, "é" * 3000, "名" * 3000, "😀" * 2000, '"\\<\n\x01' * 900, "a\ud800b" * 900],
    ids=["ascii", "latin", "cjk", "emoji", "escapes", "surrogates"],
)
def test_a_long_outcome_is_shown_cut_with_an_ellipsis(text: str) -> None:
    for note, error in ((text, None), (None, text), (text, text)):
        shown = _shown_after(back("/admin/teams", note=note, error=error))
        for key, given in (("note", note), ("error", error)):
            if given is None:
                assert key not in shown
                continue
            assert shown[key].endswith("…") and len(shown[key]) >= 300, (key, len(shown[key]))
            assert given.replace("\ud800", "\ufffd").startswith(shown[key][:-1])


def test_a_short_outcome_is_shown_whole() -> None:
    shown = _shown_after(back("/admin/teams", note="Created ünïcode-team", error="x" * 600))
    assert shown == {"note": "Created ünïcode-team", "error": "x" * 600}


async def test_an_admin_forms_long_error_reaches_the_next_page(gateway: Running) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        signed = await sign_in_ui(http, ADMIN, PASSWORD)
        assert signed.status_code == 303, signed.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', (await http.get("/admin/teams")).text)
        assert csrf is not None
        made = await http.post("/admin/teams", data={"csrf": csrf.group(1), "name": "é" * 1500})
        assert made.status_code == 303
        assert all(len(v.encode()) <= COOKIE_MAX for v in made.headers.get_list("set-cookie"))
        page = (await http.get(made.headers["location"])).text
    assert re.search("role=\"alert\">team name &#39;é{100,}[^<]*…</p>", page), page[-3000:]


# -- paging parameters of REST listings --------------------------------------------------

BAD_COUNTS = ["0", "-1", "abc", "1.5", "1e3", "²", " 5", "5_0", "1" * 5000]
PAGED = {  # path: (the largest limit, the paging parameters it takes)
    "/api/v1/audit": (1000, {"limit", "cursor", "after"}),
    "/api/v1/tools": (10000, {"limit", "offset"}),
    "/api/v1/prompts": (10000, {"limit", "offset"}),
    "/api/v1/resources": (10000, {"limit", "offset"}),
    "/api/v1/registries/search": (500, {"limit"}),
    **{
        path: (10000, {"limit", "offset"})
        for path in (
            "/api/v1/servers", "/api/v1/upstreams", "/api/v1/tokens", "/api/v1/users", "/api/v1/teams", "/api/v1/approvals",
            "/api/v1/catalog/duplicates", "/api/v1/registries", "/api/v1/registries/updates", "/api/v1/usage",
            "/api/v1/usage/unused",
        )
    },
}
UNPAGED = ["/api/v1/servers/left/tools"]  # the REST facade's list: every page of the server's, gathered


@pytest.mark.parametrize("path", sorted(PAGED))
async def test_a_limit_a_listing_cannot_take_is_a_400_naming_it(gateway: Running, path: str) -> None:
    largest, takes = PAGED[path]
    for limit in [*BAD_COUNTS, str(largest + 1), str(2**63)]:
        await _bad_request(gateway, path, {"limit": limit}, "limit")
    for fine in ("1", str(largest), ""):
        assert (await gateway.api.get(path, params={"limit": fine})).status_code == 200, fine
    for other in {"limit", "offset", "cursor", "after"} - takes:
        await _bad_request(gateway, path, {other: "1"}, other)


@pytest.mark.parametrize(("path", "name"), [("/api/v1/audit", "cursor"), ("/api/v1/audit", "after"), ("/api/v1/tools", "offset")])
async def test_a_malformed_position_is_a_400_naming_it(gateway: Running, path: str, name: str) -> None:
    for value in ["-1", "abc", "1.5", "²", "1" * 5000, str(2**63)]:
        await _bad_request(gateway, path, {name: value}, name)
    if path == "/api/v1/audit":  # past the id column (32 bits): a 500 on PostgreSQL
        await _bad_request(gateway, path, {name: str(2**31)}, name)


async def test_a_forged_or_stale_audit_cursor_is_a_position_like_any_other(gateway: Running) -> None:
    first = (await gateway.api.get("/api/v1/audit", params={"limit": "2"})).json()
    assert len(first["items"]) == 2 and first["next_cursor"] is not None
    newest = first["items"][0]["id"]
    for cursor, expected in ((str(newest + 10_000), newest), (str(2**31 - 1), newest), ("0", None), ("1", None)):
        page = (await gateway.api.get("/api/v1/audit", params={"cursor": cursor})).json()["items"]
        assert (page[0]["id"] if page else None) == expected, cursor
    beyond = await gateway.api.get("/api/v1/tools", params={"offset": "1000000"})
    assert beyond.status_code == 200 and beyond.json()["items"] == []


@pytest.mark.parametrize(("path", "key"), [("/api/v1/teams", "items"), ("/api/v1/tokens", "items"), ("/api/v1/servers", "items")])
async def test_a_list_held_at_once_pages_by_offset_and_limit_with_a_total(gateway: Running, path: str, key: str) -> None:
    for name in ("page-a", "page-b", "page-c"):  # the teams are there already
        if path == "/api/v1/tokens":
            assert (await gateway.api.post(path, json={"name": name, "servers": ["left"]})).status_code == 201
        elif path == "/api/v1/servers":
            await gateway.create_server({"name": name})
    whole = (await gateway.api.get(path)).json()
    everything = whole[key]
    assert len(everything) >= 3 and whole["total"] == len(everything)
    pages, offset = [], 0
    while offset < len(everything):
        page = (await gateway.api.get(path, params={"offset": str(offset), "limit": "2"})).json()
        assert page["total"] == len(everything) and 1 <= len(page[key]) <= 2
        pages += page[key]
        offset += len(page[key])
    assert pages == everything
    assert (await gateway.api.get(path, params={"offset": str(len(everything))})).json()[key] == []
    await _bad_request(gateway, path, {"offset": "-1"}, "offset")


@pytest.mark.parametrize("path", UNPAGED)
async def test_a_list_that_is_not_paged_refuses_paging_parameters(gateway: Running, path: str) -> None:
    for name, value in (("limit", "0"), ("limit", "10"), ("cursor", "abc"), ("offset", "5"), ("after", "1")):
        await _bad_request(gateway, path, {name: value}, name)
    assert (await gateway.api.get(path, params={"limit": ""})).status_code == 200


async def test_the_registry_listing_refuses_a_limit_or_cursor_it_cannot_take(gateway: Running) -> None:
    for limit in [*BAD_COUNTS, "101"]:
        await _bad_request(gateway, "/v0.1/servers", {"limit": limit}, "limit")
    await _bad_request(gateway, "/v0.1/servers", {"cursor": "garbage"}, "cursor")
    everything = (await gateway.api.get("/v0.1/servers", params={"limit": "100"})).json()
    assert everything["metadata"]["count"] == len(everything["servers"])


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
