"""A developer's server policy is no oracle for users, teams and tokens they may not see.

Before, a developer (403 on /api/v1/users) could name any email, team or token id in their own
server's policy: a missing one was a 400 naming it, an existing one was saved, so the answer said
which exist (the admin's token ids too); and a user id put in a rule was shown back as its email.
Now, for anyone but an admin, what they may not see is answered as what does not exist, and shown by
id only. A developer sees themselves, their own teams and those teams' members, and their own tokens."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, stdio_fixture
from tests.identity import make_user, signed_in

pytestmark = pytest.mark.anyio


def _policy(**subjects: list[str]) -> dict[str, Any]:
    return {"policy": {"rules": [{"effect": "allow", "tools": ["*"], **subjects}]}}


async def _setup(gw: Running) -> dict[str, Any]:
    """dev (alpha) owns `vs`; mate is in alpha too; outsider is in beta only."""
    people = {
        "dev": await make_user(gw, "dev@example.com", "developer", "alpha"),
        "mate": await make_user(gw, "mate@example.com", "developer", "alpha"),
        "outsider": await make_user(gw, "outsider@example.com", "developer", "beta"),
    }
    async with signed_in(gw, "dev@example.com") as dev:
        assert (await dev.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
        assert (await dev.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"]})).status_code == 201
    return people


def _refusal(response: httpx2.Response, named: str) -> str:
    """The 400's detail with the subject named written as X, to compare its shape."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = str(response.json()["detail"])
    assert repr(named) in detail, detail
    return detail.replace(repr(named), "X")


async def test_a_subject_the_developer_may_not_see_is_answered_as_one_that_does_not_exist(
    any_db_gateway: Running,
) -> None:
    gw = any_db_gateway
    people = await _setup(gw)
    admins_token = (await create_token(gw, servers="*"))["id"]
    async with signed_in(gw, "outsider@example.com") as outsider:
        theirs = await outsider.post("/api/v1/tokens", json={"name": "mine", "servers": "*"})
        assert theirs.status_code == 201, theirs.text
    async with signed_in(gw, "dev@example.com") as dev:
        own = await dev.post("/api/v1/tokens", json={"name": "mine", "servers": "*"})
        assert own.status_code == 201, own.text
        pairs = [
            ("users", "nosuch@example.com", "outsider@example.com"),
            ("users", "usr_doesnotexist", people["outsider"]["id"]),
            ("teams", "nosuchteam", "beta"),
            ("tokens", "tok_doesnotexist", admins_token),
            ("tokens", "tok_doesnotexist", theirs.json()["id"]),
        ]
        for kind, missing, hidden in pairs:
            answers = [await dev.patch("/api/v1/servers/vs", json=_policy(**{kind: [name]})) for name in (missing, hidden)]
            assert _refusal(answers[0], missing) == _refusal(answers[1], hidden), (kind, hidden)
        # What they may see is saved: themselves, a teammate, their team, their own token.
        for kind, seen in [
            ("users", "mate@example.com"),
            ("users", people["mate"]["id"]),
            ("users", "dev@example.com"),
            ("teams", "alpha"),
            ("tokens", own.json()["id"]),
        ]:
            saved = await dev.patch("/api/v1/servers/vs", json=_policy(**{kind: [seen]}))
            assert saved.status_code == 200, (kind, seen, saved.text)
    # Admins keep seeing everything: what exists is saved, what does not is a 400.
    assert (await gw.api.patch("/api/v1/servers/vs", json=_policy(users=["outsider@example.com"]))).status_code == 200
    assert (await gw.api.patch("/api/v1/servers/vs", json=_policy(tokens=[admins_token]))).status_code == 200
    assert (await gw.api.patch("/api/v1/servers/vs", json=_policy(users=["nosuch@example.com"]))).status_code == 400


async def test_reading_a_server_back_never_shows_an_email_the_developer_may_not_see(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    people = await _setup(gw)
    outsider, mate = people["outsider"], people["mate"]
    # The admin names the outsider (and the teammate) in the developer's server.
    named = await gw.api.patch("/api/v1/servers/vs", json=_policy(users=["outsider@example.com", "mate@example.com"]))
    assert named.status_code == 200, named.text
    assert named.json()["policy"]["rules"][0]["users"] == ["outsider@example.com", "mate@example.com"]
    async with signed_in(gw, "dev@example.com") as dev:
        read = [
            (await dev.get("/api/v1/servers/vs")).json(),
            *(await dev.get("/api/v1/servers")).json()["items"],
        ]
        # A change that leaves the policy as it is keeps the outsider (sent back by id), and says nothing more.
        changed = await dev.patch("/api/v1/servers/vs", json={"description": "still mine"})
        assert changed.status_code == 200, changed.text
        read.append(changed.json())
        for server in read:
            assert server["policy"]["rules"][0]["users"] == [outsider["id"], "mate@example.com"]
        assert "outsider@example.com" not in json.dumps(read)
        # The policy sent back as shown saves as it was.
        shown = read[0]["policy"]
        assert (await dev.patch("/api/v1/servers/vs", json={"policy": shown})).status_code == 200
        # A user id the developer puts in a new rule is no way to learn an email either.
        created = await dev.post("/api/v1/servers", json={"name": "vs2", "upstreams": ["fx"], **_policy(users=[outsider["id"]])})
        assert created.status_code == 400 and "outsider@example.com" not in created.text
        created = await dev.post("/api/v1/servers", json={"name": "vs2", "upstreams": ["fx"], **_policy(users=[mate["id"]])})
        assert created.status_code == 201 and created.json()["policy"]["rules"][0]["users"] == ["mate@example.com"]
    stored = (await gw.api.get("/api/v1/servers/vs")).json()["policy"]["rules"][0]["users"]
    assert stored == ["outsider@example.com", "mate@example.com"]
