"""The SQL OAuthRepo: the authorization server's keys, clients, pending requests, codes and refresh
tokens (SQLite and PostgreSQL). Single use is enforced by the database: a code or pending request is
taken by a DELETE that only one request can win, a refresh token used by a conditional UPDATE."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table, Text, and_, delete, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.oauth import (
    AuthorizationGrant,
    PendingAuthorization,
    RefreshGrant,
    SigningKey,
    StoredClient,
    client_key,
)
from bastion.store.sql.repo import _aware, _utc, unmatchable
from bastion.store.sql.tables import metadata

TZ = DateTime(timezone=True)

signing_keys = Table(
    "oauth_signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_sealed", Text, nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("retired_at", TZ),
)
clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("metadata", JSON, nullable=False),
    Column("secret_hash", String(64)),
    Column("created_at", TZ, nullable=False),
    Column("last_used_at", TZ),
)
pending = Table(
    "oauth_pending",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("request", JSON, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("client_key", String(64)),
)
codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("grant", JSON, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("family", String(64)),
)
families = Table(
    "oauth_refresh_families",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("revoked_at", TZ),
)
refresh_tokens = Table(
    "oauth_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family", String(64), nullable=False),
    Column("grant", JSON, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("used_at", TZ),
)


def _key(row: Any) -> SigningKey:
    return SigningKey(
        kid=row.kid,
        algorithm=row.algorithm,
        public_jwk=dict(row.public_jwk),
        private_sealed=row.private_sealed,
        created_at=_utc(row.created_at),
        retired_at=_aware(row.retired_at),
    )


class SqlOAuthRepo:
    """OAuthRepo over an AsyncEngine; every method is one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def list_signing_keys(self) -> list[SigningKey]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(signing_keys).order_by(signing_keys.c.created_at))
            return [_key(r) for r in rows]

    async def add_signing_key(self, key: SigningKey) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(signing_keys).values(**key.model_dump()))

    async def retire_signing_keys(self, keep: str, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid != keep, signing_keys.c.retired_at.is_(None))
                .values(retired_at=at)
            )

    async def delete_signing_keys(self, retired_before: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(signing_keys).where(signing_keys.c.retired_at < retired_before))

    async def save_client(self, client: StoredClient) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(clients).values(**client.model_dump()))

    async def get_client(self, client_id: str) -> StoredClient | None:
        if unmatchable(client_id):  # a caller's form or query string (/token, /revoke, /authorize)
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
        if row is None:
            return None
        return StoredClient(
            client_id=row.client_id,
            metadata=dict(row.metadata),
            secret_hash=row.secret_hash,
            created_at=_utc(row.created_at),
            last_used_at=_aware(row.last_used_at),
        )

    async def touch_client(self, client_id: str, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(clients).where(clients.c.client_id == client_id).values(last_used_at=at))

    async def purge_clients(self, unused_before: datetime, idle_before: datetime) -> int:
        never_used = and_(clients.c.last_used_at.is_(None), clients.c.created_at < unused_before)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(clients).where(or_(never_used, clients.c.last_used_at < idle_before)))
            return int(result.rowcount or 0)

    async def save_pending(self, request: PendingAuthorization, per_client: int) -> None:
        key = client_key(request.client_id)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(pending).values(
                    id=request.id, request=request.model_dump(mode="json"), expires_at=request.expires_at, client_key=key
                )
            )
            newest_first = pending.c.expires_at.desc(), pending.c.id.desc()
            surplus = select(pending.c.id).where(pending.c.client_key == key).order_by(*newest_first).offset(per_client)
            await conn.execute(delete(pending).where(pending.c.id.in_(surplus.scalar_subquery())))

    async def get_pending(self, pending_id: str) -> PendingAuthorization | None:
        if unmatchable(pending_id):  # the consent page's query string or form
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(pending.c.request).where(pending.c.id == pending_id))).first()
        return PendingAuthorization.model_validate(row.request) if row is not None else None

    async def set_pending_csrf(self, pending_id: str, csrf_hash: str) -> None:
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(pending.c.request).where(pending.c.id == pending_id))).first()
            if row is not None:
                request = {**row.request, "csrf_hash": csrf_hash}
                await conn.execute(update(pending).where(pending.c.id == pending_id).values(request=request))

    async def take_pending(self, pending_id: str) -> PendingAuthorization | None:
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(pending.c.request).where(pending.c.id == pending_id))).first()
            if row is None or (await conn.execute(delete(pending).where(pending.c.id == pending_id))).rowcount != 1:
                return None
        return PendingAuthorization.model_validate(row.request)

    async def save_code(self, grant: AuthorizationGrant) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(codes).values(
                    code_hash=grant.code_hash, grant=grant.model_dump(mode="json"), expires_at=grant.expires_at
                )
            )

    async def get_code(self, code_hash: str) -> AuthorizationGrant | None:
        query = select(codes.c.grant, codes.c.family).where(codes.c.code_hash == code_hash)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return AuthorizationGrant.model_validate({**row.grant, "family": row.family}) if row is not None else None

    async def take_code(self, code_hash: str, family: str, keep_until: datetime) -> AuthorizationGrant | None:
        async with self.engine.begin() as conn:
            taken = await conn.execute(
                update(codes)
                .where(codes.c.code_hash == code_hash, codes.c.family.is_(None))
                .values(family=family, expires_at=keep_until)
            )
            if taken.rowcount != 1:
                return None
            row = (await conn.execute(select(codes.c.grant).where(codes.c.code_hash == code_hash))).first()
        return AuthorizationGrant.model_validate({**row.grant, "family": family}) if row is not None else None

    async def save_refresh(self, grant: RefreshGrant) -> None:
        stored = grant.model_dump(mode="json", exclude={"used_at", "family_revoked_at"})
        async with self.engine.begin() as conn:
            known = (await conn.execute(select(families.c.id).where(families.c.id == grant.family))).first()
            if known is None:
                await conn.execute(insert(families).values(id=grant.family))
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=grant.token_hash, family=grant.family, grant=stored, expires_at=grant.expires_at
                )
            )

    async def get_refresh(self, token_hash: str) -> RefreshGrant | None:
        query = (
            select(refresh_tokens.c.grant, refresh_tokens.c.used_at, families.c.revoked_at)
            .join(families, families.c.id == refresh_tokens.c.family)
            .where(refresh_tokens.c.token_hash == token_hash)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return RefreshGrant.model_validate(
            {**row.grant, "used_at": _aware(row.used_at), "family_revoked_at": _aware(row.revoked_at)}
        )

    async def use_refresh(self, token_hash: str, at: datetime) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
                .values(used_at=at)
            )
            return bool(result.rowcount == 1)

    async def revoke_family(self, family: str, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(families).where(families.c.id == family, families.c.revoked_at.is_(None)).values(revoked_at=at)
            )

    async def grant_alive(self, family: str, client_id: str, now: datetime) -> bool:
        if unmatchable(family) or unmatchable(client_id):
            return False
        registered = exists(select(clients.c.client_id).where(clients.c.client_id == client_id))
        query = (
            select(refresh_tokens.c.token_hash)
            .join(families, families.c.id == refresh_tokens.c.family)
            .where(refresh_tokens.c.family == family, refresh_tokens.c.expires_at > now)
            .where(families.c.revoked_at.is_(None), registered)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def purge(self, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(pending).where(pending.c.expires_at < now))
            await conn.execute(delete(codes).where(codes.c.expires_at < now))
            await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < now))
            alive = select(refresh_tokens.c.family).distinct()
            await conn.execute(delete(families).where(families.c.id.not_in(alive)))
