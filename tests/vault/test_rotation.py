"""Vault key rotation without downtime, and credentials stored in plain text by older versions."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import anyio
import pytest
from alembic import command
from click.testing import CliRunner, Result
from sqlalchemy import Connection, select, text

from bastion.cli.main import cli
from bastion.store.sql.migrate import _config
from bastion.store.sql.tables import upstreams
from bastion.vault.envelope import key_id
from tests.harness import TOKEN, Running, http_fixture, serve, settings_for
from tests.store.test_migrations import engine_for, fresh_database
from tests.vault.test_sealed_upstreams import SECRET, stored_text, whoami

pytestmark = pytest.mark.anyio

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 132))).decode()


async def cli_run(gateway: Running, *args: str) -> Result:
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost"}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=env))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_rotation_moves_every_secret_to_the_new_key(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        with http_fixture() as fx:
            async with serve(settings_for(url, vault_key=KEY_A)) as first:
                await first.register({**fx.body("rec"), "headers": {"X-Api-Key": SECRET}})
                await first.create_server({"name": "vs", "upstreams": ["rec"]})

            # Only the new key, before rotation: the old secrets do not open (and say so), nothing crashes.
            async with serve(settings_for(url, vault_key=KEY_B)) as early:
                assert (await early.api.post("/api/v1/upstreams/rec/refresh")).status_code == 502

            both = settings_for(url, vault_key=KEY_B, vault_previous_keys=[KEY_A])
            async with serve(both) as during:
                assert (await whoami(during, "vs", "rec__whoami"))["x-api-key"] == SECRET
                rotated = await cli_run(during, "vault", "rotate", "--json")
                assert rotated.exit_code == 0, rotated.stderr
                report = json.loads(rotated.stdout)
                assert report == {
                    "key_id": key_id(base64.b64decode(KEY_B)), "rewrapped": 1, "already_current": 0, "failed": []
                }
                again = await cli_run(during, "vault", "rotate")
                assert again.exit_code == 0 and "Re-wrapped 0 secret(s)" in again.stdout
                assert (await whoami(during, "vs", "rec__whoami"))["x-api-key"] == SECRET  # no restart needed

            async with serve(settings_for(url, vault_key=KEY_B)) as after:
                assert (await after.api.post("/api/v1/upstreams/rec/refresh")).status_code == 200
                assert (await whoami(after, "vs", "rec__whoami"))["x-api-key"] == SECRET


async def test_only_the_admin_may_rotate(gateway: Running) -> None:
    await gateway.create_server({"name": "vs"})
    created = await gateway.api.post("/api/v1/tokens", json={"name": "r", "servers": "*", "permissions": ["read"]})
    reader = {"Authorization": f"Bearer {created.json()['token']}"}
    refused = await gateway.api.post("/api/v1/vault/rotate", headers=reader)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await gateway.api.post("/api/v1/vault/rotate", headers={"Authorization": "Bearer nope"})).status_code == 401


def _migrate_to(connection: Connection, revision: str) -> None:
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.mark.sqlite  # each case names its own database kind
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_plain_credentials_from_an_older_version_are_sealed_on_start(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with fresh_database(kind, tmp_path) as url:
        with http_fixture() as fx:
            async with engine_for(url) as engine:
                async with engine.begin() as conn:
                    await conn.run_sync(_migrate_to, "0002")
                    # As version 0002 stored it: the header value in plain JSON.
                    await conn.execute(
                        text(
                            "INSERT INTO upstreams (name, transport, url, args, env, headers, isolation, enabled, "
                            "status, created_at, updated_at) VALUES ('old', 'streamable-http', :url, '[]', '{}', "
                            ":headers, 'shared', :on, 'unknown', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                        ),
                        {"url": fx.url, "headers": json.dumps({"X-Api-Key": SECRET}), "on": True},
                    )
            async with serve(settings_for(url)) as gateway:
                stored = await stored_text(gateway.bastion.engine)
                assert SECRET not in stored
                async with gateway.bastion.engine.connect() as conn:
                    row = (await conn.execute(select(upstreams).where(upstreams.c.name == "old"))).one()
                assert row.headers == {} and row.headers_sealed.startswith("bsv1.")
                assert (await gateway.api.post("/api/v1/upstreams/old/refresh")).status_code == 200
                await gateway.create_server({"name": "vs", "upstreams": ["old"]})
                assert (await whoami(gateway, "vs", "old__whoami"))["x-api-key"] == SECRET
    assert "sealed the plain-text credentials of 1 upstream" in caplog.text
    assert SECRET not in "\n".join(r.getMessage() for r in caplog.records)
