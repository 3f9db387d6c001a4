"""Upstream credentials through a real Bastion: sealed at rest, write-only in the API, absent from
logs, arriving upstream (and the client's own token never does), and per-owner binding."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.errors import CredentialsUnavailable
from bastion.store.sql.tables import upstreams
from tests.harness import TOKEN, Running, http_fixture, serve, settings_for, stdio_fixture
from tests.store.test_migrations import fresh_database

pytestmark = pytest.mark.anyio

SECRET = "sk-live-0123456789-do-not-leak"
OTHER = "sk-live-9876543210-also-private"


async def stored_text(engine: AsyncEngine) -> str:
    """Every column of every upstreams row, as one string (what a database dump would show)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM upstreams"))).all()
    return repr([tuple(r) for r in rows])


async def whoami(gateway: Running, server: str, tool: str) -> dict[str, Any]:
    async with gateway.client(server) as client:
        result = await client.call_tool(tool, {})
    return dict(json.loads(result.content[0].text))  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_headers_are_sealed_at_rest_and_reach_only_the_upstream(
    any_db_gateway: Running, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = any_db_gateway
    caplog.set_level(logging.DEBUG)
    with http_fixture(transport) as fx:
        created = await gateway.register({**fx.body("rec"), "headers": {"X-Api-Key": SECRET}})
        await gateway.create_server({"name": "vs", "upstreams": ["rec"]})
        seen = await whoami(gateway, "vs", "rec__whoami")
        assert seen["x-api-key"] == SECRET
        assert TOKEN not in json.dumps(seen)  # the client's own bearer token never goes upstream
        assert "authorization" not in {k.lower() for k in seen}

        listed = await gateway.api.get("/api/v1/upstreams")
        shown = await gateway.api.get("/api/v1/upstreams/rec")
        for response_text in (json.dumps(created), listed.text, shown.text):
            assert SECRET not in response_text
        assert shown.json()["headers"] == {"X-Api-Key": "********"}
        stored = await stored_text(gateway.bastion.engine)
        assert SECRET not in stored and "bsv1." in stored

        patched = await gateway.api.patch("/api/v1/upstreams/rec", json={"headers": {"X-Api-Key": OTHER}})
        assert patched.status_code == 200 and OTHER not in patched.text
        assert (await whoami(gateway, "vs", "rec__whoami"))["x-api-key"] == OTHER
        stored = await stored_text(gateway.bastion.engine)
        assert OTHER not in stored and SECRET not in stored
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bastion"))
    assert SECRET not in logged and OTHER not in logged


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_ciphertext_copied_to_another_upstream_fails_there_only(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        await _copy_and_check(url)


async def _copy_and_check(url: str) -> None:
    with http_fixture() as fx:
        async with serve(settings_for(url)) as first:
            await first.register({**fx.body("good"), "headers": {"X-Api-Key": SECRET}})
            await first.register({**fx.body("victim"), "headers": {"X-Api-Key": OTHER}})
            async with first.bastion.engine.begin() as conn:
                query = select(upstreams.c.headers_sealed).where(upstreams.c.name == "good")
                stolen = (await conn.execute(query)).scalar()
                await conn.execute(update(upstreams).where(upstreams.c.name == "victim").values(headers_sealed=stolen))

        async with serve(settings_for(url)) as second:
            await second.create_server({"name": "vs", "upstreams": ["good", "victim"]})
            refreshed = await second.api.post("/api/v1/upstreams/victim/refresh")
            assert refreshed.status_code == 502
            assert refreshed.headers["content-type"] == "application/problem+json"
            assert refreshed.json()["title"] == CredentialsUnavailable.title
            assert SECRET not in refreshed.text and OTHER not in refreshed.text
            victim = (await second.api.get("/api/v1/upstreams/victim")).json()
            assert victim["status"] == "unhealthy" and "credentials" in victim["status_reason"]
            assert (await whoami(second, "vs", "good__whoami"))["x-api-key"] == SECRET
            async with second.client("vs") as client:
                with pytest.raises(Exception) as caught:
                    await client.call_tool("victim__whoami", {})
            assert getattr(caught.value, "code", None) == CredentialsUnavailable.jsonrpc_code

            # Giving the credentials anew repairs it; saving without them is refused (nothing silently dropped).
            kept = await second.api.patch("/api/v1/upstreams/victim", json={"enabled": True})
            assert kept.status_code == 409
            fixed = await second.api.patch("/api/v1/upstreams/victim", json={"headers": {"X-Api-Key": OTHER}})
            assert fixed.status_code == 200, fixed.text
            assert (await whoami(second, "vs", "victim__whoami"))["x-api-key"] == OTHER


async def test_stdio_env_is_sealed_at_rest_and_write_only(gateway: Running) -> None:
    await gateway.register({**stdio_fixture("fx"), "env": {"FX_TOKEN": SECRET}})
    shown = (await gateway.api.get("/api/v1/upstreams/fx")).json()
    assert shown["env"] == {"FX_TOKEN": "********"} and shown["auth"] == {"type": "none"}
    stored = await stored_text(gateway.bastion.engine)
    assert SECRET not in stored and "bsv1." in stored
