"""The SQL UpstreamTokenStore: each user's own tokens for per-user OAuth upstreams, sealed by the vault
with owner ``user:<id>:upstream:<name>`` (so a row copied onto another user's does not open there),
and the connect flows in progress, taken by a DELETE only one callback can win."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table, Text, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.errors import CredentialsUnavailable, NotFound
from bastion.core.models import UpstreamTokens
from bastion.core.ports import ConnectFlow
from bastion.store.sql.repo import _utc
from bastion.store.sql.tables import metadata, upstreams
from bastion.vault.envelope import Envelope, VaultError

TZ = DateTime(timezone=True)

user_tokens = Table(
    "upstream_user_tokens",
    metadata,
    Column("upstream_id", Integer, ForeignKey("upstreams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("tokens_sealed", Text, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
flows = Table(
    "upstream_oauth_states",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("upstream", String(63), nullable=False),
    Column("verifier_sealed", Text, nullable=False),
    Column("expires_at", TZ, nullable=False, index=True),
    Column("csrf_hash", String(64), nullable=True),  # of the start page's form token
    Column("browser_hash", String(64), nullable=True),  # of the nonce cookie of the browser that signed in
)


def token_owner(user: str, upstream: str) -> str:
    return f"user:{user}:upstream:{upstream}"


def _flow_owner(user: str, upstream: str, state_hash: str) -> str:
    return f"user:{user}:upstream:{upstream}:connect:{state_hash}"


def _upstream_id(name: str) -> object:
    return select(upstreams.c.id).where(upstreams.c.name == name).scalar_subquery()


class SqlUpstreamTokens:
    def __init__(self, engine: AsyncEngine, envelope: Envelope) -> None:
        self.engine = engine
        self.envelope = envelope

    async def get_tokens(self, upstream: str, user: str) -> UpstreamTokens | None:
        query = select(user_tokens.c.tokens_sealed).where(
            and_(user_tokens.c.upstream_id == _upstream_id(upstream), user_tokens.c.user_id == user)
        )
        async with self.engine.connect() as conn:
            sealed = (await conn.execute(query)).scalar_one_or_none()
        if sealed is None:
            return None
        try:
            return UpstreamTokens.model_validate_json(self.envelope.open(sealed, token_owner(user, upstream)))
        except (VaultError, ValidationError):
            raise CredentialsUnavailable(
                f"your stored credentials for upstream {upstream!r} cannot be opened; "
                f"connect again with `bastion upstreams connect {upstream}`"
            ) from None

    async def save_tokens(self, upstream: str, user: str, tokens: UpstreamTokens) -> None:
        sealed = self.envelope.seal(tokens.model_dump_json().encode(), token_owner(user, upstream))
        try:
            await self._save_tokens(upstream, user, sealed)
        except IntegrityError:
            # Raced: the same user's tokens saved meanwhile (a second callback at once; once more, the
            # row is there to update: the last one wins), or the user deleted (their 404).
            try:
                await self._save_tokens(upstream, user, sealed)
            except IntegrityError:
                raise NotFound(f"user {user!r} does not exist") from None

    async def _save_tokens(self, upstream: str, user: str, sealed: str) -> None:
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            upstream_id = (await conn.execute(select(upstreams.c.id).where(upstreams.c.name == upstream))).scalar()
            if upstream_id is None:
                raise NotFound(f"upstream {upstream!r} does not exist")
            where = and_(user_tokens.c.upstream_id == upstream_id, user_tokens.c.user_id == user)
            changed = await conn.execute(update(user_tokens).where(where).values(tokens_sealed=sealed, updated_at=now))
            if changed.rowcount == 0:
                await conn.execute(
                    insert(user_tokens).values(
                        upstream_id=upstream_id, user_id=user, tokens_sealed=sealed, updated_at=now
                    )
                )

    async def delete_tokens(self, upstream: str, user: str) -> bool:
        where = and_(user_tokens.c.upstream_id == _upstream_id(upstream), user_tokens.c.user_id == user)
        async with self.engine.begin() as conn:
            return bool((await conn.execute(delete(user_tokens).where(where))).rowcount)

    async def delete_upstream_tokens(self, upstream: str) -> int:
        async with self.engine.begin() as conn:
            return int((await conn.execute(delete(user_tokens).where(user_tokens.c.upstream_id == _upstream_id(upstream)))).rowcount)

    async def save_flow(self, state_hash: str, flow: ConnectFlow) -> None:
        sealed = self.envelope.seal(flow.verifier.encode(), _flow_owner(flow.user, flow.upstream, state_hash))
        async with self.engine.begin() as conn:
            await conn.execute(delete(flows).where(flows.c.expires_at < datetime.now(UTC)))
            await conn.execute(
                insert(flows).values(
                    state_hash=state_hash,
                    user_id=flow.user,
                    upstream=flow.upstream,
                    verifier_sealed=sealed,
                    expires_at=flow.expires_at,
                )
            )

    async def take_flow(self, state_hash: str, now: datetime) -> ConnectFlow | None:
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(flows).where(flows.c.state_hash == state_hash))).first()
            if row is None or (await conn.execute(delete(flows).where(flows.c.state_hash == state_hash))).rowcount != 1:
                return None
        return self._flow(row, state_hash, now)

    async def get_flow(self, state_hash: str, now: datetime) -> ConnectFlow | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(flows).where(flows.c.state_hash == state_hash))).first()
        return self._flow(row, state_hash, now) if row is not None else None

    async def mark_flow(
        self, state_hash: str, *, csrf_hash: str | None = None, browser_hash: str | None = None
    ) -> bool:
        changes = {k: v for k, v in (("csrf_hash", csrf_hash), ("browser_hash", browser_hash)) if v is not None}
        async with self.engine.begin() as conn:
            changed = await conn.execute(update(flows).where(flows.c.state_hash == state_hash).values(changes))
        return bool(changed.rowcount)

    def _flow(self, row: Any, state_hash: str, now: datetime) -> ConnectFlow | None:
        if _utc(row.expires_at) <= now:
            return None
        try:
            verifier = self.envelope.open(row.verifier_sealed, _flow_owner(row.user_id, row.upstream, state_hash))
        except VaultError:
            return None
        return ConnectFlow(
            user=row.user_id,
            upstream=row.upstream,
            verifier=verifier.decode(),
            expires_at=_utc(row.expires_at),
            csrf_hash=row.csrf_hash,
            browser_hash=row.browser_hash,
        )
