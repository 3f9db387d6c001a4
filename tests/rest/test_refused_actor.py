"""A request refused after its credential was proven (a developer's API token or sign-in session
asking for what only an admin may) is audited naming who asked: the user, the API token and the
principal, as a refused MCP call is.

Before, the edge's refusal record named the address alone (actor_user, actor_token and actor_client
all null), so which credential probed the admin endpoints was lost."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import Running
from tests.identity import make_user, signed_in
from tests.rest.test_audit_records import _records
from tests.rest.test_audit_records import logged as gateway  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio

DEV = "dev@example.com"


async def test_refusals_of_a_developers_token_and_session_name_the_developer(gateway: Running) -> None:
    dev = await make_user(gateway, DEV, "developer")
    async with signed_in(gateway, DEV) as session:
        made = await session.post("/api/v1/tokens", json={"name": "probe", "servers": "*", "permissions": ["mcp", "read"]})
        assert made.status_code == 201, made.text
        token_id, secret = made.json()["id"], made.json()["token"]
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx2.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=60) as token:
            assert (await token.get("/api/v1/users", params={"probe": "token"})).status_code == 403
            assert (await token.post("/api/v1/vault/rotate")).status_code == 403
        assert (await session.get("/api/v1/audit")).status_code == 403
        assert (await session.patch(f"/api/v1/users/{DEV}", json={"role": "admin"})).status_code == 403

    refused = {r["action"]: r for r in await _records(gateway) if r["outcome"] == "denied"}
    by_token = [refused["GET /api/v1/users"], refused["POST /api/v1/vault/rotate"]]
    by_session = [refused["GET /api/v1/audit"], refused[f"PATCH /api/v1/users/{DEV}"]]
    for record in by_token:
        assert record["actor_user"] == dev["id"], record
        assert record["actor_token"] == token_id, record
        assert record["actor_client"] and token_id in record["actor_client"], record
    for record in by_session:
        assert record["actor_user"] == dev["id"], record
        assert record["actor_token"] is None, record
        assert record["actor_client"], record
    assert (await gateway.api.post("/api/v1/audit/verify")).json()["ok"] is True


async def test_a_request_without_a_valid_credential_is_still_audited_by_address_alone(gateway: Running) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=60) as anon:
        bad = await anon.get("/api/v1/users", headers={"Authorization": "Bearer bst_not-a-token"})
    assert bad.status_code == 401
    record = next(r for r in await _records(gateway) if r["action"] == "GET /api/v1/users" and r["outcome"] == "denied")
    assert (record["actor_user"], record["actor_token"], record["actor_client"]) == (None, None, None)
    assert record["actor_address"] == "127.0.0.1"


async def test_a_read_a_route_refuses_is_audited_naming_who_asked(gateway: Running) -> None:
    """The role gate lets everyone reach a user's grants; the route refuses another user's. Such a
    refused read left no record at all (reads are not changes)."""
    dev = await make_user(gateway, DEV, "developer")
    other = await make_user(gateway, "other@example.com", "developer")
    async with signed_in(gateway, DEV) as session:
        assert (await session.get(f"/api/v1/users/{other['id']}/grants")).status_code == 403
        assert (await session.get(f"/api/v1/users/{dev['id']}/grants")).status_code == 200
    records = [r for r in await _records(gateway) if r["action"] == "GET /api/v1/users/{id}/grants"]
    assert len(records) == 1, records  # the allowed read is not recorded
    (record,) = records
    assert record["outcome"] == "denied" and record["target"] == other["id"]
    assert record["actor_user"] == dev["id"] and record["actor_client"], record
