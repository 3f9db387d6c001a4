"""Class: policy rules that silently never match (finding 10).

Rules match the caller's stable user id, team and token id. A rule naming a user by email used
to be stored as written and never matched, so a deny did nothing; unknown users, teams and
tokens were accepted the same way. On save, emails resolve to ids, what does not exist is refused
by name, and responses show emails again."""

from __future__ import annotations

import pytest

from tests.attacks.modern import rpc, text_of
from tests.harness import Running, stdio_fixture
from tests.identity import login, make_user, signed_in

pytestmark = pytest.mark.anyio


def _deny(**subjects: list[str]) -> dict[str, object]:
    return {"default": "allow", "rules": [{"effect": "deny", "tools": ["fx__echo"], **subjects}]}


async def test_a_deny_naming_a_user_by_email_denies_that_user(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    created = await make_user(gateway, "mallory@example.com", "developer")
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public", "policy": _deny(users=["Mallory@Example.com"])})
    token = (await login(gateway, "mallory@example.com")).json()["token"]
    reply = await rpc(gateway, "vs", "tools/call", {"name": "fx__echo", "arguments": {"text": "hi"}}, token=token)
    assert reply.get("error", {}).get("code") == -32003, reply
    assert text_of(await rpc(gateway, "vs", "tools/call", {"name": "fx__echo", "arguments": {"text": "hi"}})) == "hi"

    shown = (await gateway.api.get("/api/v1/servers/vs")).json()["policy"]["rules"][0]
    assert shown["users"] == ["mallory@example.com"]
    stored = gateway.bastion.gateway.snapshot.servers["vs"].spec.policy
    assert stored is not None and stored.rules[0].users == (created["id"],)
    # A PATCH that sends the shown policy back keeps it as it was.
    again = await gateway.api.patch("/api/v1/servers/vs", json={"description": "unchanged policy"})
    assert again.status_code == 200, again.text
    assert again.json()["policy"]["rules"][0]["users"] == ["mallory@example.com"]


UNKNOWN = [
    ({"users": ["nobody@example.com"]}, "nobody@example.com"),
    ({"users": ["no-such-id"]}, "no-such-id"),
    ({"teams": ["no-such-team"]}, "no-such-team"),
    ({"tokens": ["no-such-token"]}, "no-such-token"),
    ({"roles": ["superuser"]}, "roles"),
]


async def test_rules_naming_what_does_not_exist_are_refused(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "ok", "upstreams": ["fx"]})
    for subjects, named in UNKNOWN:
        response = await gateway.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"], "policy": _deny(**subjects)})
        assert response.status_code == 400, (subjects, response.text)
        assert named in response.json()["detail"]
        patched = await gateway.api.patch("/api/v1/servers/ok", json={"policy": _deny(**subjects)})
        assert patched.status_code == 400, (subjects, patched.text)
    assert (await gateway.api.get("/api/v1/servers/ok")).json()["policy"] is None


async def test_a_server_policy_shows_other_users_emails_only_to_its_editors(gateway: Running) -> None:
    """A public server's policy used to show every user it names by email to anyone who may see the
    server, people of other teams included: a directory of who is allowed or denied what. Its
    editors still read (and send back) the emails of the users they may see (their teams' members,
    not the outsider); everyone else reads their own email and ids."""
    await gateway.register({**stdio_fixture("fx"), "visibility": "public"})
    await make_user(gateway, "editor@example.com", "developer", "owners")
    carol = await make_user(gateway, "carol@example.com", "developer", "owners")
    stranger = await make_user(gateway, "outsider@example.com", "developer", "others")
    policy = _deny(users=["carol@example.com", "outsider@example.com"])
    created = await gateway.api.post(
        "/api/v1/servers", json={"name": "pub", "upstreams": ["fx"], "visibility": "public", "team": "owners", "policy": policy}
    )
    assert created.status_code == 201, created.text

    def users(reply: object) -> list[str]:
        return list(reply["policy"]["rules"][0]["users"])  # type: ignore[index]

    async with signed_in(gateway, "outsider@example.com") as outsider:
        one = (await outsider.get("/api/v1/servers/pub")).json()
        listed = [s for s in (await outsider.get("/api/v1/servers")).json()["items"] if s["name"] == "pub"]
    assert users(one) == [carol["id"], "outsider@example.com"]
    assert users(listed[0]) == users(one)
    async with signed_in(gateway, "editor@example.com") as editor:
        shown = (await editor.get("/api/v1/servers/pub")).json()
        assert users(shown) == ["carol@example.com", stranger["id"]]
        kept = await editor.patch("/api/v1/servers/pub", json={"description": "policy sent back as shown"})
        assert kept.status_code == 200, kept.text
    assert users((await gateway.api.get("/api/v1/servers/pub")).json()) == ["carol@example.com", "outsider@example.com"]
