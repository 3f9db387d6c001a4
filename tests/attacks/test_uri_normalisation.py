"""Class: a policy decision made on one spelling of a URI while the upstream reads another (finding 8).

A deny on `fixture://items/secret*` must hold for every spelling the upstream reads as the same
resource: percent-encoded unreserved characters, upper-case schemes and hosts, dot segments.
Bastion decides on the RFC 3986 normal form and forwards that form, so both see the same URI."""

from __future__ import annotations

import pytest

from tests.attacks.modern import rpc, text_of
from tests.harness import Running, stdio_fixture

pytestmark = pytest.mark.anyio

POLICY = {
    "default": "allow",
    "rules": [{"effect": "deny", "resources": ["fixture://items/secret*"]}, {"effect": "deny", "resources": ["fixture://items/x/*"]}],
}
SPELLINGS = [
    "fixture://items/secret1",
    "fixture://items/%73ecret1",
    "fixture://items/%73%65%63%72%65%741",
    "fixture://items/secre%741",
    "FIXTURE://items/secret1",
    "fixture://ITEMS/secret1",
    "fixture://items/x/../secret1",
    "fixture://items/./secret1",
    # Upstreams commonly decode every escape (the SDK turns `%2F` into `/`): that reading is checked too.
    "fixture://items/x%2Fsecret",
    "fixture://items/x%252Fsecret",
    "fixture://items/x%2fsecret",
]


@pytest.fixture
async def guarded(gateway: Running) -> Running:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"], "policy": POLICY})
    return gateway


async def test_every_spelling_of_a_denied_uri_is_denied(guarded: Running) -> None:
    for uri in SPELLINGS:
        reply = await rpc(guarded, "vs", "resources/read", {"uri": uri})
        assert "error" in reply, (uri, reply)
        assert reply["error"]["code"] == -32003, (uri, reply)


async def test_the_upstream_reads_the_normal_form_that_was_allowed(guarded: Running) -> None:
    assert text_of(await rpc(guarded, "vs", "resources/read", {"uri": "fixture://items/%61%62c"})) == "item abc"
    assert text_of(await rpc(guarded, "vs", "resources/read", {"uri": "FIXTURE://static"})) == "static content"
    # Reserved characters keep their (upper-case) escape; this upstream then decodes it itself.
    assert text_of(await rpc(guarded, "vs", "resources/read", {"uri": "fixture://items/a%2fb"})) == "item a/b"
