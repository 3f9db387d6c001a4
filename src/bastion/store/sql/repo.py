"""The SQL ConfigRepo (SQLite and PostgreSQL through SQLAlchemy's async engine).

SQL errors are translated here: a unique-constraint race becomes Conflict. Anything else
propagates, and the edge answers it as a generic 500 that never shows the statement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import randbelow
from typing import Any

from sqlalchemy import Text, bindparam, cast, delete, event, false, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bastion.core.errors import BadRequest, Conflict, NotFound, StaleWrite
from bastion.core.grants import ApiToken
from bastion.core.models import (
    CatalogItem,
    OpenApiSource,
    RegistryOrigin,
    RewrapReport,
    Upstream,
    UpstreamSpec,
    UpstreamState,
    VirtualServerSpec,
)
from bastion.core.pinning import PinBook, PinRecord
from bastion.core.policy import Policy
from bastion.core.ratelimit import RateLimits
from bastion.core.transforms import ToolTransform
from bastion.store.sql import pins
from bastion.store.sql.credentials import open_row, rewrap_all, seal_plaintext, sealed_values
from bastion.store.sql.decoded_rows import DecodedRows
from bastion.store.sql.sqlite_file import private_sqlite_file
from bastion.store.sql.tables import (
    api_tokens,
    catalog_items,
    pin_records,
    secrets,
    teams,
    upstreams,
    users,
    virtual_servers,
)
from bastion.vault.envelope import Envelope


def make_engine(url: str, pool_size: int = 5) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys and WAL so readers never block the writer."""
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        engine = create_async_engine(url, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            # Writers take turns; under load (100 upstreams saving their status at start) a writer
            # may wait a while, which is better than failing with "database is locked".
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=pool_size, pool_pre_ping=True, hide_parameters=True)



_ITEM_COLUMNS = (
    upstreams.c.name, catalog_items.c.kind, catalog_items.c.key, catalog_items.c.gateway_name,
    cast(catalog_items.c.definition, Text), catalog_items.c.enabled, catalog_items.c.name_override,
    catalog_items.c.description_override, catalog_items.c.discovered_at,
)
"""A catalog item's row as `_item` reads it: the definition as its stored JSON text, decoded there."""


def _item(row: tuple[Any, ...]) -> CatalogItem:
    upstream, kind, key, gateway_name, definition, enabled, name_override, description_override, discovered_at = row
    return CatalogItem(
        upstream=upstream, kind=kind, key=key, gateway_name=gateway_name, definition=json.loads(definition),
        enabled=enabled, name_override=name_override, description_override=description_override,
        discovered_at=_utc(discovered_at),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _aware(value: datetime | None) -> datetime | None:
    return _utc(value) if value is not None else None


def unmatchable(key: str) -> bool:
    """Whether a caller's lookup key can match no row: one holding a NUL. No stored key holds one,
    and PostgreSQL cannot even compare one (an error, so a 500), so such a lookup finds nothing
    without asking the database, as for any unknown key."""
    return "\x00" in key


def _upstream_from_row(row: Any, envelope: Envelope) -> Upstream:
    spec = UpstreamSpec(
        name=row.name,
        transport=row.transport,
        url=row.url,
        command=row.command,
        args=tuple(row.args),
        isolation=row.isolation,
        protocol=row.protocol,
        enabled=row.enabled,
        openapi=OpenApiSource.model_validate(row.openapi) if row.openapi else None,
        **open_row(envelope, row),
        team=row.team,
        owner=row.owner,
        visibility=row.visibility,
        pin=row.pin,
        origin=RegistryOrigin.model_validate(row.origin) if row.origin else None,
        destinations=tuple(row.destinations or ()),
    )
    state = UpstreamState(
        status=row.status,
        status_reason=row.status_reason,
        last_seen=_aware(row.last_seen),
        server_name=row.server_name,
        server_version=row.server_version,
        protocol_version=row.protocol_version,
    )
    return Upstream(spec=spec, state=state, revision=row.revision)


def _first_revision() -> int:
    """A new row's revision: not 0 but a random start, so a change read from a row that was deleted
    and made again under its name (by another replica) does not match the new one's revision."""
    return randbelow(1 << 30) + 1


def _spec_values(spec: UpstreamSpec, envelope: Envelope) -> dict[str, Any]:
    if spec.credentials_error is not None:
        raise ValueError("an upstream whose credentials do not open cannot be saved with them")
    return {
        "transport": spec.transport,
        "url": spec.url,
        "command": spec.command,
        "args": list(spec.args),
        "isolation": spec.isolation,
        "protocol": spec.protocol,
        "enabled": spec.enabled,
        "openapi": spec.openapi.model_dump(mode="json") if spec.openapi is not None else None,
        **sealed_values(envelope, spec),
        "team": spec.team,
        "owner": spec.owner,
        "visibility": spec.visibility,
        "pin": spec.pin,
        "origin": spec.origin.model_dump() if spec.origin is not None else None,
        "destinations": list(spec.destinations) or None,
    }


def _state_values(state: UpstreamState) -> dict[str, Any]:
    return state.model_dump()


def _item_values(item: CatalogItem, upstream_id: int, now: datetime) -> dict[str, Any]:
    return {
        "upstream_id": upstream_id,
        "kind": item.kind,
        "key": item.key,
        "gateway_name": item.gateway_name,
        "definition": item.definition,
        "enabled": item.enabled,
        "name_override": item.name_override,
        "description_override": item.description_override,
        "discovered_at": item.discovered_at or now,
    }


def _server_from_row(row: Any) -> VirtualServerSpec:
    return VirtualServerSpec(
        name=row.name,
        description=row.description,
        prefix=row.prefix,
        tools=tuple(row.tools),
        prompts=tuple(row.prompts),
        resources=tuple(row.resources),
        upstreams=tuple(row.upstreams),
        policy=Policy.model_validate(row.policy) if row.policy is not None else None,
        rate_limits=RateLimits.model_validate(row.rate_limits) if row.rate_limits else None,
        transforms={k: ToolTransform.model_validate(v) for k, v in (row.transforms or {}).items()},
        discovery=row.discovery,
        team=row.team,
        owner=row.owner,
        visibility=row.visibility,
    )


def _token_from_row(row: Any) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        servers=row.servers if row.servers == "*" else tuple(row.servers),
        permissions=tuple(row.permissions),
        created_at=_utc(row.created_at),
        expires_at=_aware(row.expires_at),
        ip_allow=tuple(row.ip_allow),
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
        last_used_ip=row.last_used_ip,
        user=row.user_id,
    )


async def set_secret_hash(engine: AsyncEngine, key: str, value: str) -> None:
    """Store the hash of a gateway secret (the admin token's), replacing any earlier one. A function of
    its own so the CLI can reset the admin token without the vault key."""
    async with engine.begin() as conn:
        await conn.execute(delete(secrets).where(secrets.c.key == key))
        await conn.execute(insert(secrets).values(key=key, value=value))


async def _check_team(conn: AsyncConnection, team: str | None) -> None:
    """Refuse (and so roll back) a write that gives a row to a team that is not there. The team's row is
    share-locked until the commit: its deletion (store/sql/identity.py) waits, then finds the row."""
    if team is not None:
        found = select(teams.c.name).where(teams.c.name == team).with_for_update(read=True)
        if (await conn.execute(found)).first() is None:
            raise BadRequest(f"no such team {team!r}")


class SqlConfigRepo:
    """ConfigRepo over an AsyncEngine. Every method is one transaction. Upstream credentials are
    sealed by `envelope` before they are written and opened as they are read."""

    def __init__(self, engine: AsyncEngine, envelope: Envelope) -> None:
        self.engine = engine
        self.envelope = envelope
        self._items = DecodedRows(_item)
        self._pins = pins.pin_rows()

    async def _upstream_id(self, conn: AsyncConnection, name: str, *, lock: bool = False) -> int:
        query = select(upstreams.c.id).where(upstreams.c.name == name)
        # FOR UPDATE (PostgreSQL; SQLite serialises writers anyway) so two concurrent replacements of
        # one upstream's items take turns instead of both inserting after both deleted.
        found = (await conn.execute(query.with_for_update() if lock else query)).scalar()
        if found is None:
            raise NotFound(f"upstream {name!r} does not exist")
        return int(found)

    async def list_upstreams(self) -> list[Upstream]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(upstreams).order_by(upstreams.c.name))
            return [_upstream_from_row(r, self.envelope) for r in rows]

    async def get_upstream(self, name: str) -> Upstream | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(upstreams).where(upstreams.c.name == name))).first()
            return _upstream_from_row(row, self.envelope) if row is not None else None

    async def create_upstream(self, upstream: Upstream, items: Sequence[CatalogItem]) -> int:
        now = _now()
        spec_values = _spec_values(upstream.spec, self.envelope)
        values = {"name": upstream.spec.name, **spec_values, **_state_values(upstream.state)}
        revision = _first_revision()
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(insert(upstreams).values(**values, created_at=now, updated_at=now, revision=revision))
                key = result.inserted_primary_key
                assert key is not None
                upstream_id = int(key[0])
                if items:
                    await conn.execute(insert(catalog_items), [_item_values(i, upstream_id, now) for i in items])
                await _check_team(conn, upstream.spec.team)
        except IntegrityError:
            raise Conflict(f"upstream {upstream.spec.name!r} already exists") from None
        return revision

    async def seal_plaintext_secrets(self) -> int:
        return await seal_plaintext(self.engine, self.envelope)

    async def rewrap_secrets(self) -> RewrapReport:
        return await rewrap_all(self.engine, self.envelope)

    async def update_upstream_spec(self, spec: UpstreamSpec, *, revision: int | None = None) -> None:
        async with self.engine.begin() as conn:
            await self._upstream_id(conn, spec.name)
            values = _spec_values(spec, self.envelope)
            query = update(upstreams).where(upstreams.c.name == spec.name)
            if revision is not None:
                query = query.where(upstreams.c.revision == revision)
            result = await conn.execute(query.values(**values, updated_at=_now(), revision=upstreams.c.revision + 1))
            if result.rowcount == 0:
                raise StaleWrite(f"upstream {spec.name!r} was changed by another request meanwhile")
            await _check_team(conn, spec.team)

    async def save_upstream_state(self, name: str, state: UpstreamState) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(upstreams).where(upstreams.c.name == name).values(**_state_values(state)))

    async def replace_items(self, upstream: str, items: Sequence[CatalogItem]) -> list[CatalogItem]:
        """Replace an upstream's discovered items, keeping operator overrides of items that remain.

        Items that remain are updated in place, in their discovered columns only: the operator's
        (enabled, name and description overrides) and the first discovery stay as stored when this
        writes, not as read before, so an edit another replica saves meanwhile is kept."""
        now = _now()
        async with self.engine.begin() as conn:
            upstream_id = await self._upstream_id(conn, upstream, lock=True)
            of_upstream = catalog_items.c.upstream_id == upstream_id
            # The first write, of no row (SQLite takes its write lock at any write; PostgreSQL's row lock
            # above keeps other replacements out): what is read after it stays as read until the commit.
            await conn.execute(update(catalog_items).where(false()).values(enabled=catalog_items.c.enabled))
            query = select(catalog_items.c.id, catalog_items.c.kind, catalog_items.c.key).where(of_upstream)
            stored = {(r.kind, r.key): r.id for r in await conn.execute(query)}
            # Worked out here, not in the statement: PostgreSQL refuses a NOT IN of ~10,000 pairs.
            wanted = {(i.kind, i.key) for i in items}
            if gone := [{"b_id": row_id} for ident, row_id in stored.items() if ident not in wanted]:
                await conn.execute(delete(catalog_items).where(catalog_items.c.id == bindparam("b_id")), gone)
            changed = [{"b_kind": i.kind, "b_key": i.key, "b_name": i.gateway_name, "b_definition": i.definition} for i in items if (i.kind, i.key) in stored]
            if changed:
                same = update(catalog_items).where(
                    of_upstream, catalog_items.c.kind == bindparam("b_kind"), catalog_items.c.key == bindparam("b_key")
                )
                await conn.execute(same.values(gateway_name=bindparam("b_name"), definition=bindparam("b_definition")), changed)
            if added := [_item_values(i, upstream_id, now) for i in items if (i.kind, i.key) not in stored]:
                await conn.execute(insert(catalog_items), added)
            rows = await conn.execute(select(*_ITEM_COLUMNS).join(upstreams).where(of_upstream))
            return [_item(tuple(r)) for r in rows]

    async def delete_upstream(self, name: str, *, revision: int | None = None) -> None:
        async with self.engine.begin() as conn:
            upstream_id = await self._upstream_id(conn, name)
            if revision is not None:
                # A write that changes nothing, as the check: it locks the row (SQLite: the database) before
                # anything is deleted, so no change can land between the check and the deletion.
                still = update(upstreams).where(upstreams.c.id == upstream_id, upstreams.c.revision == revision)
                if (await conn.execute(still.values(revision=upstreams.c.revision))).rowcount == 0:
                    raise StaleWrite(f"upstream {name!r} was changed by another request meanwhile")
            await conn.execute(delete(catalog_items).where(catalog_items.c.upstream_id == upstream_id))
            await conn.execute(delete(pin_records).where(pin_records.c.upstream_id == upstream_id))
            await conn.execute(delete(upstreams).where(upstreams.c.id == upstream_id))

    async def list_pins(self) -> PinBook:
        return await pins.list_pins(self.engine, self._pins)

    async def save_pins(self, records: Sequence[PinRecord], *, drop: Sequence[PinRecord] = ()) -> None:
        await pins.save_pins(self.engine, records, drop=drop)

    async def decide_pin(self, decision: PinRecord, *, keep: bool, was: PinRecord | None, serving: str | None) -> None:
        await pins.decide_pin(self.engine, decision, keep=keep, was=was, serving=serving)

    async def set_pin_trust(self, upstream: str, trust: bool) -> None:
        await pins.set_pin_trust(self.engine, upstream, trust)

    async def approve_trusted(self, upstream: str, records: Sequence[PinRecord]) -> bool:
        return await pins.approve_trusted(self.engine, upstream, records)

    async def list_items(self) -> list[CatalogItem]:
        query = select(*_ITEM_COLUMNS).join(upstreams).order_by(upstreams.c.name, catalog_items.c.kind, catalog_items.c.key)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return await self._items.values(rows)

    async def update_item(self, item: CatalogItem, *, was: CatalogItem | None = None) -> None:
        async with self.engine.begin() as conn:
            upstream_id = await self._upstream_id(conn, item.upstream)
            query = update(catalog_items).where(
                catalog_items.c.upstream_id == upstream_id,
                catalog_items.c.kind == item.kind,
                catalog_items.c.key == item.key,
            )
            if was is not None:
                # What an edit writes is these three columns, so they are its compare-and-set: the row
                # must still hold what the edit was made on (a rediscovery re-inserting it keeps them).
                query = query.where(
                    catalog_items.c.enabled == was.enabled,
                    catalog_items.c.name_override.is_not_distinct_from(was.name_override),
                    catalog_items.c.description_override.is_not_distinct_from(was.description_override),
                )
            result = await conn.execute(
                query.values(
                    enabled=item.enabled,
                    name_override=item.name_override,
                    description_override=item.description_override,
                )
            )
            if was is not None and result.rowcount == 0:
                raise StaleWrite(f"{item.kind.replace('_', ' ')} {item.gateway_name!r} was changed by another request meanwhile")

    async def list_servers(self) -> list[VirtualServerSpec]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(virtual_servers).order_by(virtual_servers.c.name))
            return [_server_from_row(r) for r in rows]

    async def get_server(self, name: str) -> VirtualServerSpec | None:
        found = await self.get_server_revision(name)
        return found[0] if found is not None else None

    async def get_server_revision(self, name: str) -> tuple[VirtualServerSpec, int] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(virtual_servers).where(virtual_servers.c.name == name))).first()
            return (_server_from_row(row), row.revision) if row is not None else None

    async def save_server(self, spec: VirtualServerSpec, *, create: bool, revision: int | None = None) -> int:
        now = _now()
        values = {
            "description": spec.description,
            "prefix": spec.prefix,
            "tools": list(spec.tools),
            "prompts": list(spec.prompts),
            "resources": list(spec.resources),
            "upstreams": list(spec.upstreams),
            "policy": spec.policy.model_dump(mode="json") if spec.policy is not None else None,
            "rate_limits": spec.rate_limits.model_dump(exclude_none=True) if spec.rate_limits else None,
            "transforms": {k: t.model_dump(mode="json", exclude_unset=True) for k, t in spec.transforms.items()} or None,
            "discovery": spec.discovery,
            "team": spec.team,
            "owner": spec.owner,
            "visibility": spec.visibility,
            "updated_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                if create:
                    first = _first_revision()
                    await conn.execute(insert(virtual_servers).values(name=spec.name, created_at=now, revision=first, **values))
                    await _check_team(conn, spec.team)
                    return first
                query = update(virtual_servers).where(virtual_servers.c.name == spec.name)
                if revision is not None:
                    query = query.where(virtual_servers.c.revision == revision)
                result = await conn.execute(query.values(**values, revision=virtual_servers.c.revision + 1))
                if result.rowcount == 0 and revision is not None:
                    raise StaleWrite(f"virtual server {spec.name!r} was changed by another request meanwhile")
                if result.rowcount == 0:
                    raise NotFound(f"virtual server {spec.name!r} does not exist")
                await _check_team(conn, spec.team)
                saved = await conn.execute(select(virtual_servers.c.revision).where(virtual_servers.c.name == spec.name))
                return int(saved.scalar_one())
        except IntegrityError:
            raise Conflict(f"virtual server {spec.name!r} already exists") from None

    async def delete_server(self, name: str, *, revision: int | None = None) -> None:
        async with self.engine.begin() as conn:
            query = delete(virtual_servers).where(virtual_servers.c.name == name)
            result = await conn.execute(query if revision is None else query.where(virtual_servers.c.revision == revision))
            if result.rowcount == 0 and revision is not None and await self._server_exists(conn, name):
                raise StaleWrite(f"virtual server {name!r} was changed by another request meanwhile")
            if result.rowcount == 0:
                raise NotFound(f"virtual server {name!r} does not exist")

    @staticmethod
    async def _server_exists(conn: AsyncConnection, name: str) -> bool:
        return (await conn.execute(select(virtual_servers.c.id).where(virtual_servers.c.name == name))).first() is not None

    async def get_secret_hash(self, key: str) -> str | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(secrets.c.value).where(secrets.c.key == key))).scalar()

    async def set_secret_hash(self, key: str, value: str) -> None:
        await set_secret_hash(self.engine, key, value)

    async def create_api_token(self, token: ApiToken, token_hash: str) -> None:
        values = {
            "id": token.id,
            "name": token.name,
            "token_hash": token_hash,
            "servers": token.servers if token.servers == "*" else list(token.servers),
            "permissions": list(token.permissions),
            "ip_allow": list(token.ip_allow),
            "created_at": token.created_at,
            "expires_at": token.expires_at,
            "user_id": token.user,
        }
        try:
            async with self.engine.begin() as conn:
                if token.user is None:
                    await conn.execute(insert(api_tokens).values(**values))
                    return
                # Inserted from the owner's row (there is no foreign key: migration 0004), and only while
                # it is there: a deletion that came first is not undone by it, and one that comes after
                # waits on the share lock and then deletes it with the user's other tokens.
                columns = [k for k in values if k != "user_id"]
                row = select(*(literal(values[k], api_tokens.c[k].type) for k in columns), users.c.id)
                owner = row.where(users.c.id == token.user).with_for_update(read=True)
                created = await conn.execute(insert(api_tokens).from_select([*columns, "user_id"], owner))
        except IntegrityError:
            raise Conflict("an API token with this id or secret already exists") from None
        if created.rowcount != 1:
            raise NotFound(f"user {token.user!r} does not exist")

    async def list_api_tokens(self) -> list[ApiToken]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id))
            return [_token_from_row(r) for r in rows]

    async def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_tokens).where(api_tokens.c.token_hash == token_hash))).first()
            return _token_from_row(row) if row is not None else None

    async def revoke_api_token(self, token_id: str, at: datetime) -> None:
        """Revoke once; revoking again keeps the first time. NotFound if there is no such token."""
        async with self.engine.begin() as conn:
            found = (await conn.execute(select(api_tokens.c.id).where(api_tokens.c.id == token_id))).first()
            if found is None:
                raise NotFound(f"API token {token_id!r} does not exist")
            await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    async def touch_api_token(self, token_id: str, at: datetime, ip: str | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at, last_used_ip=ip)
            )
