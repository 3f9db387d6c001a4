"""Apply the Alembic migrations shipped in the package to a database, on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit key works; replicas starting together serialise on it (PostgreSQL only).
_ADVISORY_LOCK_KEY = 0x62617374696F6E


def _upgrade(connection: Connection) -> None:
    config = _config()
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
    command.upgrade(config, "head")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this build knows (raises if the migrations branch)."""
    return ScriptDirectory.from_config(_config()).get_current_head()


async def schema_is_current(engine: AsyncEngine) -> bool:
    """Whether the database answers and its schema is at the newest revision this build knows."""
    head = head_revision()
    async with engine.connect() as conn:
        return await conn.run_sync(_current) == head


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to run from several processes at once."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
