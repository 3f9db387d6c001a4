"""An upstream's headers, env and auth settings in the upstreams table: sealed by the vault on write,
opened on load.

Each is one secret whose owner (associated data) is ``upstream:<name>:<field>``, so a ciphertext
copied onto another upstream's row, or into another column, does not open there.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.models import RewrapReport, UpstreamAuth, UpstreamSpec
from bastion.store.sql.tables import upstreams
from bastion.vault.envelope import Envelope, VaultError

log = logging.getLogger("bastion.vault")

FIELDS = ("headers", "env")
SEALED = (*FIELDS, "auth")
AUTH: TypeAdapter[UpstreamAuth] = TypeAdapter(UpstreamAuth)


def owner(upstream: str, field: str) -> str:
    return f"upstream:{upstream}:{field}"


def sealed_values(envelope: Envelope, spec: UpstreamSpec) -> dict[str, Any]:
    """Column values for the spec's secrets: plain columns empty, each non-empty mapping sealed."""
    values: dict[str, Any] = {"headers": {}, "env": {}}
    for field in FIELDS:
        mapping: dict[str, str] = getattr(spec, field)
        values[f"{field}_sealed"] = envelope.seal_mapping(dict(mapping), owner(spec.name, field)) if mapping else None
    auth = spec.auth
    values["auth_sealed"] = envelope.seal(auth.model_dump_json().encode(), owner(spec.name, "auth")) if auth else None
    return values


def open_row(envelope: Envelope, row: Any) -> dict[str, Any]:
    """`headers`, `env` and `credentials_error` for a row's spec; a secret that does not open is
    reported (its reason names the owner, never a value) and the upstream gets no credentials."""
    opened: dict[str, Any] = {}
    try:
        for field in FIELDS:
            token = getattr(row, f"{field}_sealed")
            plain = dict(getattr(row, field) or {})  # written by an older version, not sealed yet
            opened[field] = envelope.open_mapping(token, owner(row.name, field)) if token else plain
        if row.auth_sealed:
            opened["auth"] = AUTH.validate_json(
                envelope.open(row.auth_sealed, owner(row.name, "auth"))
            )
    except VaultError as exc:
        return {"credentials_error": f"its stored credentials cannot be opened: {exc}"}
    except ValidationError:
        return {"credentials_error": "its stored auth settings are not valid"}
    return opened


async def seal_plaintext(engine: AsyncEngine, envelope: Envelope) -> int:
    """Seal the plain headers/env older versions stored, and empty those columns. Nothing is lost:
    a row's plain values are sealed in the same transaction that clears them."""
    changed = 0
    async with engine.begin() as conn:
        query = select(upstreams.c.id, upstreams.c.name, upstreams.c.headers, upstreams.c.env)
        rows = (await conn.execute(query)).all()
        for row in rows:
            values: dict[str, Any] = {}
            for field in FIELDS:
                plain = dict(getattr(row, field) or {})
                if plain:
                    values[field] = {}
                    values[f"{field}_sealed"] = envelope.seal_mapping(plain, owner(row.name, field))
            if values:
                await conn.execute(update(upstreams).where(upstreams.c.id == row.id).values(**values))
                changed += 1
    if changed:
        log.info("sealed the plain-text credentials of %d upstream(s) stored by an older version", changed)
    return changed


async def rewrap_all(engine: AsyncEngine, envelope: Envelope) -> RewrapReport:
    """Re-wrap every sealed secret under the current key, row by row; a row changed meanwhile keeps
    its newer value (compare-and-set), and one that does not open is reported, not fatal."""
    rewrapped = current = 0
    failed: list[str] = []
    async with engine.connect() as conn:
        rows = (await conn.execute(select(upstreams.c.id, upstreams.c.name, *_sealed_columns()))).all()
    for row in rows:
        for field in SEALED:
            column = upstreams.c[f"{field}_sealed"]
            token = getattr(row, f"{field}_sealed")
            if not token:
                continue
            try:
                if envelope.is_current(token):
                    current += 1
                    continue
                fresh = envelope.rewrap(token, owner(row.name, field))
            except VaultError:
                failed.append(owner(row.name, field))
                continue
            async with engine.begin() as conn:
                unchanged = (upstreams.c.id == row.id) & (column == token)
                await conn.execute(update(upstreams).where(unchanged).values({column: fresh}))
            rewrapped += 1
    return RewrapReport(
        key_id=envelope.ring.current_id, rewrapped=rewrapped, already_current=current, failed=tuple(failed)
    )


def _sealed_columns() -> list[Any]:
    return [upstreams.c[f"{field}_sealed"] for field in SEALED]
