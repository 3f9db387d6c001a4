"""Class: an upstream takes over names or URIs that another upstream already serves (finding 5),
and a developer renames a tool into another upstream's namespace (finding 12).

An upstream that registered harmless starts listing the same tool name (on a `prefix: never`
server), the same resource URI, or a concrete URI under another upstream's template. The first
owner keeps what it owned; the newcomer's clashing items are held out and reported until an admin
decides. Names a developer gives keep their owner's `{upstream}__` prefix."""

from __future__ import annotations

import logging

import pytest

from tests.attacks.modern import bare_fixture, rpc, text_of
from tests.harness import Running, stdio_fixture
from tests.identity import make_user, signed_in

pytestmark = pytest.mark.anyio


async def _newcomer_lists(gateway: Running, tool: str, args: dict[str, object]) -> None:
    """Make the `zz` (control) server's bare upstream list something new, then let Bastion see it."""
    assert "result" in await rpc(gateway, "ctl", "tools/call", {"name": tool, "arguments": {**args, "notify": False}})
    response = await gateway.api.post("/api/v1/upstreams/aa/refresh")
    assert response.status_code == 200, response.text


async def test_a_newcomer_cannot_take_over_names_or_uris(gateway: Running, caplog: pytest.LogCaptureFixture) -> None:
    await gateway.register(stdio_fixture("fx"))  # the first owner
    # Sorts first, starts with nothing that clashes. With pin "warn" its new items stay usable, so the
    # ownership rule, not the quarantine of unapproved items ("block"), is what must hold them out.
    await gateway.register({**bare_fixture("aa"), "pin": "warn"})
    await gateway.create_server({"name": "ctl", "upstreams": ["aa"]})
    await gateway.create_server(
        {"name": "vs", "prefix": "never", "tools": ["fx__echo"], "resources": ["fx__static", "fx__item"], "upstreams": ["aa"]}
    )
    assert text_of(await rpc(gateway, "vs", "tools/call", {"name": "echo", "arguments": {"text": "card 4242"}})) == "card 4242"

    caplog.set_level(logging.WARNING, logger="bastion.control")
    await _newcomer_lists(gateway, "aa__add_tool", {"name": "echo"})
    await _newcomer_lists(gateway, "aa__add_resource", {"uri": "fixture://static", "text": "evil static"})
    await _newcomer_lists(gateway, "aa__add_resource", {"uri": "fixture://items/secret1", "text": "evil item"})

    # The call, its arguments and the reads still go to the first owner.
    assert text_of(await rpc(gateway, "vs", "tools/call", {"name": "echo", "arguments": {"text": "card 4242"}})) == "card 4242"
    assert text_of(await rpc(gateway, "vs", "resources/read", {"uri": "fixture://static"})) == "static content"
    assert text_of(await rpc(gateway, "vs", "resources/read", {"uri": "fixture://items/secret1"})) == "item secret1"

    # The clash is reported: on the server, on the newcomer upstream, and in the log.
    server = (await gateway.api.get("/api/v1/servers/vs")).json()
    assert any("echo" in p and "aa" in p for p in server["problems"]), server["problems"]
    assert any("fixture://static" in p for p in server["problems"]), server["problems"]
    assert any("fixture://items/secret1" in p for p in server["problems"]), server["problems"]
    newcomer = (await gateway.api.get("/api/v1/upstreams/aa")).json()
    held = {(c["kind"], c["name"], c["owner"]) for c in newcomer["clashes"]}
    assert ("tool", "echo", "fx") in held
    assert ("resource", "fixture://static", "fx") in held
    assert ("resource", "fixture://items/secret1", "fx") in held
    assert newcomer["status_reason"] and "held out" in newcomer["status_reason"]
    assert (await gateway.api.get("/api/v1/upstreams/fx")).json()["clashes"] == []
    assert any("echo" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    # Held out means not listed either.
    listed = await rpc(gateway, "vs", "tools/list", {})
    assert [t["description"] for t in listed["result"]["tools"] if t["name"] == "echo"] == ["Return the text unchanged."]

    # An admin decides: disabling the owner's tool hands the name to the newcomer.
    assert (await gateway.api.patch("/api/v1/tools/fx__echo", json={"enabled": False})).status_code == 200
    assert text_of(await rpc(gateway, "vs", "tools/call", {"name": "echo", "arguments": {"text": "x"}})) == "echo called"


async def test_a_developer_cannot_rename_into_another_upstreams_namespace(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await make_user(gateway, "dev-b@example.com", "developer", "team-b")
    await gateway.register({**stdio_fixture("mine"), "team": "team-b", "visibility": "team"})
    async with signed_in(gateway, "dev-b@example.com") as dev:
        refused = await dev.patch("/api/v1/tools/mine__echo", json={"name": "fx__echo_v2"})
        assert refused.status_code == 400, refused.text
        assert "mine__" in refused.json()["detail"]
        bare = await dev.patch("/api/v1/tools/mine__echo", json={"name": "echo_v2"})
        assert bare.status_code == 400, bare.text
        own = await dev.patch("/api/v1/tools/mine__echo", json={"name": "mine__echo_v2"})
        assert own.status_code == 200, own.text
    # An admin may give a bare name (for `prefix: never` servers), never another upstream's prefix.
    assert (await gateway.api.patch("/api/v1/tools/mine__add", json={"name": "plus"})).status_code == 200
    assert (await gateway.api.patch("/api/v1/tools/mine__fail", json={"name": "fx__fail_v2"})).status_code == 400
