"""Whoever hosts a REST upstream's OpenAPI document or an A2A agent's card cannot move the stored
credentials to another origin on refresh: the move is refused (the admin sees why), calls keep going
where the operator approved, and an admin may approve the new origin (core/destinations.py)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.core.errors import UnapprovedDestination
from tests.harness import Running, serve, serve_asgi, settings_for
from tests.identity import make_user, signed_in
from tests.rest.test_upstreams_api import assert_problem
from tests.upstreams.rest_service import API_KEY, DOCUMENT
from tests.upstreams.rest_service import build_app as rest_app

pytestmark = pytest.mark.anyio


def recording(app: ASGIApp, requests: list[dict[str, str]]) -> ASGIApp:
    """`app`, recording the headers of every HTTP request it is sent (and its path)."""

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            requests.append({**headers, ":path": scope["path"]})
        await app(scope, receive, send)

    return record


def carried_secret(requests: list[dict[str, str]], secret: str) -> list[dict[str, str]]:
    return [r for r in requests if any(secret in value for value in r.values())]


@pytest.fixture
async def two_services() -> AsyncIterator[tuple[str, dict[str, Any], str, list[dict[str, str]]]]:
    """The real REST service on two loopback ports: the first's live document, and what the second was sent."""
    document = copy.deepcopy(DOCUMENT)
    other_requests: list[dict[str, str]] = []
    async with serve_asgi(rest_app(document)) as base, serve_asgi(recording(rest_app(), other_requests)) as other:
        yield base, document, other, other_requests


async def register_pets(gateway: Running, base: str, pin: str) -> None:
    await gateway.register(
        {
            "name": "pets", "transport": "openapi", "spec_url": f"{base}/openapi.json", "pin": pin,
            "auth": {"type": "api_key", "header": "X-Api-Key", "value": API_KEY},
        }
    )
    await gateway.create_server({"name": "vs", "upstreams": ["pets"]})


async def whoami(gateway: Running) -> dict[str, Any]:
    response = await gateway.api.post("/api/v1/servers/vs/tools/pets__whoami", json={})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def assert_refused(gateway: Running, name: str, origin: str, refreshed: httpx2.Response) -> None:
    """The refresh was refused as a move to `origin`, and the upstream's status says so."""
    problem = assert_problem(refreshed, 502)
    assert problem["title"] == UnapprovedDestination.title and origin in problem["detail"], problem
    shown = (await gateway.api.get(f"/api/v1/upstreams/{name}")).json()
    assert shown["status"] == "unhealthy" and origin in shown["status_reason"], shown
    assert origin not in shown["destinations"]


@pytest.mark.parametrize("pin", ["block", "off"])
async def test_an_operation_moved_to_another_origin_never_gets_the_key(
    gateway: Running, two_services: Any, pin: str
) -> None:
    base, document, other, other_requests = two_services
    await register_pets(gateway, base, pin)
    document["paths"]["/secure/whoami"]["get"]["servers"] = [{"url": f"{other}/v1"}]
    refreshed = await gateway.api.post("/api/v1/upstreams/pets/refresh")
    assert (await whoami(gateway))["content"][0]["text"] == '{"via":"header"}'  # still where it was approved
    assert carried_secret(other_requests, API_KEY) == [] and other_requests == []
    await assert_refused(gateway, "pets", other, refreshed)
    assert (await gateway.api.get("/api/v1/upstreams/pets")).json()["destinations"] == [base]
    # An admin approves the new origin: from then on the operation is served there.
    approved = await gateway.api.patch("/api/v1/upstreams/pets", json={"destinations": [base, other]})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "healthy" and approved.json()["destinations"] == sorted([base, other])
    await whoami(gateway)
    assert [r[":path"] for r in carried_secret(other_requests, API_KEY)] == ["/v1/secure/whoami"]


async def test_a_document_whose_servers_moved_is_refused_and_keeps_its_approved_origin(
    gateway: Running, two_services: Any
) -> None:
    base, document, other, other_requests = two_services
    await register_pets(gateway, base, "warn")
    document["servers"] = [{"url": f"{other}/v1"}]
    refreshed = await gateway.api.post("/api/v1/upstreams/pets/refresh")
    assert (await whoami(gateway))["content"][0]["text"] == '{"via":"header"}'
    assert carried_secret(other_requests, API_KEY) == []
    await assert_refused(gateway, "pets", other, refreshed)
    # A change of something else keeps what is approved: the moved document is refused again, and
    # with what was discovered before gone (as after a restart) the call is refused, not moved.
    changed = await gateway.api.patch("/api/v1/upstreams/pets", json={"exclude": {"operations": ["createPet"]}})
    assert assert_problem(changed, 502)["title"] == UnapprovedDestination.title
    called = await gateway.api.post("/api/v1/servers/vs/tools/pets__whoami", json={})
    assert assert_problem(called, 502)["title"] == UnapprovedDestination.title
    assert other_requests == []


async def test_after_a_restart_the_moved_operation_is_refused_and_the_others_are_served(
    tmp_path: Path, two_services: Any
) -> None:
    base, document, other, other_requests = two_services
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")
    async with serve(settings) as gateway:
        await register_pets(gateway, base, "block")
        for approval in (await gateway.api.get("/api/v1/approvals")).json()["items"]:
            await gateway.api.post(f"/api/v1/approvals/{approval['id']}/approve")
    document["paths"]["/secure/whoami"]["get"]["servers"] = [{"url": f"{other}/v1"}]
    async with serve(settings) as gateway:  # nothing discovered yet: the first call reads the document
        listed = await gateway.api.post("/api/v1/servers/vs/tools/pets__listPets", json={})
        assert listed.status_code == 200 and not listed.json()["is_error"], listed.text
        called = await gateway.api.post("/api/v1/servers/vs/tools/pets__whoami", json={})
        assert other in assert_problem(called, 502)["detail"]
    assert other_requests == []


async def test_a_developer_cannot_approve_an_origin(any_db_gateway: Running, two_services: Any) -> None:
    base, document, other, other_requests = two_services
    await make_user(any_db_gateway, "dev@example.com", "developer", "alpha")
    async with signed_in(any_db_gateway, "dev@example.com") as dev:
        registered = await dev.post("/api/v1/upstreams", json={
            "name": "pets", "transport": "openapi", "spec_url": f"{base}/openapi.json",
            "headers": {"X-Api-Key": API_KEY},
        })
        assert registered.status_code == 201, registered.text
        document["servers"] = [{"url": f"{other}/v1"}]
        refused = await dev.patch("/api/v1/upstreams/pets", json={"destinations": [base, other]})
        assert assert_problem(refused, 403)["missing"] == "role:admin"
        assert_problem(await dev.post("/api/v1/upstreams/pets/refresh"), 502)
    assert other_requests == []


async def test_an_admin_moving_the_upstream_approves_where_it_moves(gateway: Running, two_services: Any) -> None:
    base, _, other, other_requests = two_services
    await register_pets(gateway, base, "block")
    moved = await gateway.api.patch("/api/v1/upstreams/pets", json={"spec_url": f"{other}/openapi.json"})
    assert moved.status_code == 200, moved.text
    await whoami(gateway)
    assert [r[":path"] for r in carried_secret(other_requests, API_KEY)] == ["/v1/secure/whoami"]
    assert moved.json()["destinations"] == [other]



async def test_an_agent_card_that_moves_the_endpoint_never_sends_the_token_there(gateway: Running) -> None:
    pytest.importorskip("a2a", reason="the a2a-sdk test dependency is not installed")
    from tests.upstreams.a2a_agent import AGENT_TOKEN, build_app

    seen: dict[str, Any] = {}
    other_requests: list[dict[str, str]] = []
    async with serve_asgi(build_app(seen)) as base, serve_asgi(recording(build_app({}), other_requests)) as other:
        seen["base_url"] = base
        await gateway.register(
            {
                "name": "agent", "transport": "a2a", "url": f"{base}/.well-known/agent-card.json", "pin": "off",
                "auth": {"type": "bearer", "token": AGENT_TOKEN},
            }
        )
        await gateway.create_server({"name": "vs", "upstreams": ["agent"]})
        seen["base_url"] = other  # the card now names the other port's agent
        refreshed = await gateway.api.post("/api/v1/upstreams/agent/refresh")
        called = await gateway.api.post("/api/v1/servers/vs/tools/agent__shout", json={"message": "hi"})
        assert carried_secret(other_requests, AGENT_TOKEN) == [] and other_requests == []
        assert called.status_code == 200 and called.json()["content"][0]["text"] == "HI", called.text
        assert set(seen["authorization"]) == {f"Bearer {AGENT_TOKEN}"}
        await assert_refused(gateway, "agent", other, refreshed)
