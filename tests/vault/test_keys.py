"""Where the vault key comes from, and Bastion refusing to start without one where it must not invent it."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.app import running
from bastion.cli.main import cli
from bastion.vault.envelope import key_id
from bastion.vault.keys import VaultConfigError, load_key_ring
from tests.harness import settings_for

KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()
OLD = bytes(range(1, 33))


def test_the_embedded_default_generates_a_private_key_file_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys" / "bastion.vault.key"
    with caplog.at_level(logging.INFO, logger="bastion.vault"):
        first = load_key_ring(key=None, key_file=path, previous=[], may_generate=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in caplog.text and "generated" in caplog.text
    written = path.read_text().strip()
    assert written not in caplog.text and first.current.hex() not in caplog.text
    again = load_key_ring(key=None, key_file=path, previous=[], may_generate=True)
    assert again.current == first.current


def test_a_configured_key_wins_and_previous_keys_join_the_ring(tmp_path: Path) -> None:
    ring = load_key_ring(
        key=KEY_B64, key_file=tmp_path / "unused", previous=[base64.b64encode(OLD).decode(), KEY_B64], may_generate=True
    )
    assert ring.current == KEY and ring.previous == (OLD,)
    assert ring.kek(key_id(OLD)) == OLD
    assert not (tmp_path / "unused").exists()


def test_a_key_file_is_read_on_any_database(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.write_text(KEY_B64 + "\n")
    path.chmod(0o600)
    assert load_key_ring(key=None, key_file=path, previous=[], may_generate=False).current == KEY


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_key_is_refused_without_echoing_it(bad: str, tmp_path: Path) -> None:
    with pytest.raises(VaultConfigError) as caught:
        load_key_ring(key=bad, key_file=tmp_path / "k", previous=[], may_generate=True)
    assert bad not in str(caught.value)


def test_without_a_key_a_shared_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VaultConfigError) as caught:
        load_key_ring(key=None, key_file=tmp_path / "missing.key", previous=[], may_generate=False)
    assert "BASTION_VAULT_KEY" in str(caught.value)
    assert not (tmp_path / "missing.key").exists()


@pytest.mark.anyio
async def test_bastion_on_postgres_without_a_vault_key_refuses_to_start(tmp_path: Path) -> None:
    settings = settings_for(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/never_touched",
        vault_key=None,
        vault_key_file=tmp_path / "absent.key",
    )
    with pytest.raises(VaultConfigError):
        async with running(settings):
            pass  # pragma: no cover - must not start


@pytest.mark.anyio
async def test_bastion_on_sqlite_without_a_key_makes_one_and_keeps_using_it(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", vault_key=None, vault_key_file=tmp_path / "v.key")
    async with running(settings):
        pass
    made = (tmp_path / "v.key").read_text()
    async with running(settings):
        pass
    assert (tmp_path / "v.key").read_text() == made


def test_bastion_serve_on_postgres_without_a_key_exits_with_the_reason(tmp_path: Path) -> None:
    env = {
        "BASTION_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/never_touched",
        "BASTION_VAULT_KEY_FILE": str(tmp_path / "absent.key"),
        "BASTION_PORT": "0",
    }
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code == 1
    assert "BASTION_VAULT_KEY" in result.stderr and "Traceback" not in result.stderr
