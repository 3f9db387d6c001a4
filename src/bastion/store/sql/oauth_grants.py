"""A user's OAuth grants in the authorization server's tables (SQLite and PostgreSQL): listed by
refresh family, and revoked all at once (a password change, a deactivation, an admin's request) the
way a refresh token's reuse revokes its family. Tokens are kept as hashes: none is ever read back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.oauth_grants import UserGrant
from bastion.store.sql.oauth import clients, codes, families, refresh_tokens
from bastion.store.sql.repo import _aware, _utc, unmatchable


def _owned_by(user_id: str) -> Any:
    return refresh_tokens.c.grant["user_id"].as_string() == user_id


class SqlUserGrants:
    """UserGrantStore over an AsyncEngine. `refresh_ttl` is how long a refresh token lives, which
    tells when each kept token was issued (only its expiry is stored)."""

    def __init__(self, engine: AsyncEngine, refresh_ttl: float) -> None:
        self.engine = engine
        self._ttl = timedelta(seconds=refresh_ttl)

    async def user_grants(self, user_id: str, now: datetime) -> list[UserGrant]:
        if unmatchable(user_id):
            return []
        query = (
            select(refresh_tokens.c.family, refresh_tokens.c.grant, refresh_tokens.c.expires_at, refresh_tokens.c.used_at)
            .join(families, families.c.id == refresh_tokens.c.family)
            .where(_owned_by(user_id), families.c.revoked_at.is_(None))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            names = await self._client_names(conn, {str(r.grant["client_id"]) for r in rows})
        kept: dict[str, list[Any]] = {}
        for row in rows:
            kept.setdefault(row.family, []).append(row)
        grants = []
        for family, tokens in kept.items():
            latest = max(tokens, key=lambda r: _utc(r.expires_at))
            client_id = str(latest.grant["client_id"])
            expires = _utc(latest.expires_at)
            if expires <= now or client_id not in names:  # run out, or its client is gone: dead already
                continue
            used = [u for u in (_aware(r.used_at) for r in tokens) if u is not None]
            grants.append(
                UserGrant(
                    id=family,
                    client_id=client_id,
                    client_name=names[client_id],
                    resource=str(latest.grant["resource"]),
                    scopes=tuple(latest.grant.get("scopes") or ()),
                    created_at=min(_utc(r.expires_at) for r in tokens) - self._ttl,
                    last_used_at=max(used) if used else None,
                    expires_at=expires,
                )
            )
        return sorted(grants, key=lambda g: (g.created_at or g.expires_at, g.id), reverse=True)

    @staticmethod
    async def _client_names(conn: Any, client_ids: set[str]) -> dict[str, str | None]:
        if not client_ids:
            return {}
        query = select(clients.c.client_id, clients.c.metadata).where(clients.c.client_id.in_(sorted(client_ids)))
        found = {}
        for row in await conn.execute(query):
            name = row.metadata.get("client_name") if isinstance(row.metadata, dict) else None
            found[row.client_id] = name if isinstance(name, str) else None
        return found

    async def revoke_user_grants(self, user_id: str, at: datetime, family: str | None = None) -> list[str]:
        if unmatchable(user_id) or (family is not None and unmatchable(family)):
            return []
        theirs = select(refresh_tokens.c.family).where(_owned_by(user_id)).distinct()
        if family is not None:
            theirs = theirs.where(refresh_tokens.c.family == family)
        async with self.engine.begin() as conn:
            if family is None:  # a code not yet exchanged would start a new grant
                unexchanged = codes.c.grant["user_id"].as_string() == user_id
                await conn.execute(delete(codes).where(unexchanged, codes.c.family.is_(None)))
            live = families.c.id.in_(theirs.scalar_subquery()) & families.c.revoked_at.is_(None)
            ended = [r.id for r in await conn.execute(select(families.c.id).where(live))]
            if ended:
                await conn.execute(update(families).where(families.c.id.in_(ended)).values(revoked_at=at))
        return ended
