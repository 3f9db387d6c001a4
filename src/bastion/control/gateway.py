"""The control plane: registration, refresh, health and catalog edits; virtual servers are a part of
it of their own (control/virtual_servers.py).

Every change goes to the store first, then the in-memory snapshot is rebuilt and swapped, then
connected clients whose lists changed are told. The request path only ever reads the snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from functools import partial

import anyio
from anyio.lowlevel import checkpoint

from bastion.control.stale import on_fresh_state
from bastion.control.virtual_servers import VirtualServers
from bastion.core.compose import compose
from bastion.core.credential_moves import same_destination
from bastion.core.destinations import approving, keeping_approved
from bastion.core.errors import (
    BadRequest,
    BastionError,
    Conflict,
    NameCollision,
    NotFound,
    StaleWrite,
    UpstreamNotConnected,
)
from bastion.core.models import (
    CatalogItem,
    Discovery,
    ItemKind,
    OAuthUserGrant,
    RewrapReport,
    Upstream,
    UpstreamSpec,
    UpstreamState,
)
from bastion.core.naming import check_rename, is_valid_tool_name
from bastion.core.pinning import approve
from bastion.core.ports import ChangeFeed, ConfigRepo, Leadership
from bastion.core.snapshot import Snapshot, build_snapshot
from bastion.core.transforms import TransformError
from bastion.tasks import TaskRunner
from bastion.upstream.pool import UpstreamPool

log = logging.getLogger("bastion.control")

ChangeListener = Callable[[Snapshot, Snapshot], Awaitable[None]]

_AWAITING_USER = UpstreamState(status="unknown", status_reason="waiting for a user to connect their account")


def _per_user_oauth(spec: UpstreamSpec) -> bool:
    return isinstance(spec.auth, OAuthUserGrant)


def _healthy(discovery: Discovery) -> UpstreamState:
    return UpstreamState(
        status="healthy",
        last_seen=datetime.now(UTC),
        server_name=discovery.server_name,
        server_version=discovery.server_version,
        protocol_version=discovery.protocol_version,
    )


class Gateway(VirtualServers):
    def __init__(
        self,
        repo: ConfigRepo,
        pool: UpstreamPool,
        runner: TaskRunner,
        *,
        health_interval: float,
        feed: ChangeFeed | None = None,
        leadership: Leadership | None = None,
        team_exists: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.repo = repo
        self.pool = pool
        self.runner = runner
        self.health_interval = health_interval
        self.feed = feed
        self.leadership = leadership
        self.team_exists = team_exists
        self.health_checks = 0
        """How many periodic health checks this replica has run (only the leader runs them)."""
        self.snapshot = Snapshot()
        self._listeners: list[ChangeListener] = []
        self._write_lock = anyio.Lock()
        self._rebuild_lock = anyio.Lock()
        self._rebuild_requests = 0
        self._rebuild_covered = 0
        self._refreshing: set[str] = set()
        self._refresh_again: set[str] = set()
        self._change_locks: dict[str, anyio.Lock] = {}

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def current(self) -> Snapshot:
        return self.snapshot

    def writing(self) -> anyio.Lock:
        """Held while an upstream or virtual server is saved and the snapshot rebuilt with it; deleting
        a team holds it too, so no upstream or server is given to a team as it goes."""
        return self._write_lock

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the snapshot, connect enabled upstreams in the background, start health checks."""
        await self.rebuild(announce=False)
        upstreams = list(self.snapshot.upstreams.values())
        self.pool.adopt([u.spec for u in upstreams if u.spec.enabled])
        for upstream in upstreams:
            if upstream.spec.enabled:
                self.runner.spawn(f"connect:{upstream.spec.name}", self._connect_and_refresh, upstream.spec.name)
        self.runner.spawn("health", self._health_loop)

    async def _connect_and_refresh(self, name: str) -> None:
        try:
            await self.pool.ensure(name)
        except BastionError:
            pass  # the refresh below records why as the upstream's status
        await self.refresh_upstream(name, quiet=True)

    async def rebuild(self, *, announce: bool = True) -> Snapshot:
        """Load the snapshot from the store and swap it in; tell local listeners and (for a change
        made here, `announce`) the other replicas."""
        # One read-and-swap at a time: with changes arriving from other replicas too, a slower
        # read that started earlier must not replace a newer snapshot. Requests that wait while one
        # runs are served together by the next: a rebuild that starts after a request reads every
        # write made before it (100 upstreams refreshing at start cost a few rebuilds, not 100).
        self._rebuild_requests += 1
        request = self._rebuild_requests
        async with self._rebuild_lock:
            if self._rebuild_covered >= request:
                if announce and self.feed is not None:
                    await self.feed.publish_change()
                return self.snapshot
            self._rebuild_covered = self._rebuild_requests
            upstreams = await self.repo.list_upstreams()
            items = await self.repo.list_items()
            specs = await self.repo.list_servers()
            pins = await self.repo.list_pins()
            old = self.snapshot
            # Composing a large catalog takes a while: off the event loop, so requests go on meanwhile
            # (the inputs are frozen values; bench/snapshot_build.py measures it).
            new = await anyio.to_thread.run_sync(partial(build_snapshot, upstreams, items, specs, version=old.version + 1, pins=pins, previous=old))
            self.snapshot = new
        for server, problems in new.problems.items():
            for problem in problems:
                log.warning("virtual server %s: %s", server, problem)
        for listener in self._listeners:
            try:
                await listener(old, new)
            except Exception:
                log.exception("change listener failed")
        if announce and self.feed is not None:
            await self.feed.publish_change()
        return new

    async def reload(self) -> None:
        """Another replica changed configuration: load it, and let the pool follow upstream changes
        (a removed or changed upstream is closed here; a new one connects on first use)."""
        old = self.snapshot
        new = await self.rebuild(announce=False)
        for name, before in old.upstreams.items():
            after = new.upstreams.get(name)
            # Only what this pool still holds as it was: a local change in progress is left alone.
            if (after is None or after.spec != before.spec) and self.pool.spec_of(name) == before.spec:
                await self.pool.close(name)
        self.pool.adopt([u.spec for n, u in new.upstreams.items() if u.spec.enabled and self.pool.spec_of(n) is None])

    # -- upstreams ---------------------------------------------------------------------------

    def upstream(self, name: str) -> Upstream:
        upstream = self.snapshot.upstreams.get(name)
        if upstream is None:
            raise NotFound(f"upstream {name!r} does not exist")
        return upstream

    async def register_upstream(
        self, spec: UpstreamSpec, *, approve_as: str | None = None
    ) -> tuple[Upstream, Discovery]:
        """Connect, discover, then save: an upstream that cannot be reached is not saved at all.

        With `approve_as` (an admin registering it), what this first discovery finds is approved in
        their name; if it finds nothing yet (per-user OAuth), the first discovery that does is."""
        # Under the name's change lock: a second registration of the name at once (whose discovery would
        # replace this one's connection in the pool, and its failure close it) waits and finds it
        # there; so does a deletion of the name, which would close it.
        async with self._changing(spec.name):
            if await self.repo.get_upstream(spec.name) is not None:
                raise Conflict(f"upstream {spec.name!r} already exists")
            try:
                discovery = await self.pool.discover(spec)
            except BaseException:
                await self.pool.close(spec.name)  # not registered: nothing of it stays running
                raise
            async with self._write_lock:  # its team is not deleted meanwhile (see `writing`)
                upstream = await self._save_new(spec, discovery, approve_as)
        return upstream, discovery

    async def _save_new(self, spec: UpstreamSpec, discovery: Discovery, approve_as: str | None) -> Upstream:
        spec = self._approve_destinations(spec, discovery)
        try:
            await self._check_team(spec.team)
            upstream = Upstream(spec=spec, state=_healthy(discovery) if not _per_user_oauth(spec) else _AWAITING_USER)
            upstream = upstream.model_copy(update={"revision": await self.repo.create_upstream(upstream, discovery.items)})
        except BaseException:
            await self.pool.close(spec.name)
            raise
        if approve_as is not None:
            await self._approve_all(spec.name, discovery.items, approve_as)
        if not spec.enabled:
            await self.pool.close(spec.name)
            upstream = Upstream(spec=spec, state=UpstreamState(status="disabled"), revision=upstream.revision)
            await self.repo.save_upstream_state(spec.name, upstream.state)
        await self.rebuild()
        return upstream

    async def update_upstream(self, spec: UpstreamSpec, *, planned: int | None = None) -> Upstream:
        """Apply a changed spec; a changed connection is tried before it is saved. With `planned` (the
        revision `spec` was made from), it is saved only if the upstream is still at it, else StaleWrite."""

        async def replace(_current: UpstreamSpec) -> UpstreamSpec:
            return spec

        async with self._changing(spec.name):
            return await self._change_upstream(spec.name, replace, planned)

    async def change_upstream(self, name: str, change: Callable[[UpstreamSpec], Awaitable[UpstreamSpec]]) -> Upstream:
        """Apply `change` to the upstream as stored now, one change of it at a time: of two changes made
        at once, the second applies to what the first saved (instead of undoing it), and neither's
        discovery replaces or closes the connection of the other."""
        async with self._changing(name):
            # Another replica may save it between this read and the write: then it is read and changed again.
            return await on_fresh_state(f"upstream {name!r}", partial(self._change_upstream, name, change), self.reload)

    async def _change_upstream(
        self, name: str, change: Callable[[UpstreamSpec], Awaitable[UpstreamSpec]], planned: int | None = None
    ) -> Upstream:
        stored = await self.repo.get_upstream(name)
        if stored is None:
            raise NotFound(f"upstream {name!r} does not exist")
        spec = keeping_approved(stored.spec, await change(stored.spec))
        if spec != stored.spec:  # saved only if still at the revision read (or `spec` was planned against)
            await self._apply(stored.spec, spec, stored.revision if planned is None else planned)
        return self.upstream(name)

    async def _apply(self, old: UpstreamSpec, spec: UpstreamSpec, revision: int) -> None:
        ownership = {"team", "owner", "visibility", "pin"}
        if spec.model_dump(exclude=ownership) == old.model_dump(exclude=ownership):
            # Only who owns or sees it (or its pin mode) changed: nothing to reconnect or rediscover.
            async with self._write_lock:
                await self._check_moved(old, spec)
                await self.repo.update_upstream_spec(spec, revision=revision)
                await self.rebuild()
            return
        if not same_destination(old, spec):
            # Users' accounts were connected for where it sent credentials until now: never sent to a
            # new place (two changes, each harmless alone, would otherwise move them). Before the
            # discovery, which may already use them.
            forgotten = await self.pool.forget_accounts(spec.name)
            if forgotten:
                log.info("upstream %r moved: %d connected account(s) forgotten, to connect again", spec.name, forgotten)
        discovery = None
        try:
            if spec.enabled:
                discovery = await self.pool.discover(spec)
            else:
                await self.pool.close(spec.name)
            if discovery is not None:
                spec = self._approve_destinations(spec, discovery)
            async with self._write_lock:  # saved and rebuilt before a team deletion may look (see `writing`)
                await self._check_moved(old, spec)
                await self.repo.update_upstream_spec(spec, revision=revision)
                if discovery is None:
                    await self.repo.save_upstream_state(spec.name, UpstreamState(status="disabled"))
                elif not _per_user_oauth(spec):  # its catalog comes from a connected user's session (refresh)
                    await self.repo.replace_items(spec.name, discovery.items)
                    await self.repo.save_upstream_state(spec.name, _healthy(discovery))
                await self.rebuild()
        except BastionError:
            await self.pool.close(spec.name)  # not saved: the pool goes back to the upstream as stored now,
            with suppress(BastionError):  # which after a stale write is another replica's spec, not `old`
                stored = await self.repo.get_upstream(spec.name)
                if stored is not None and stored.spec.enabled:
                    self.pool.adopt([stored.spec])
                    await self.pool.open(stored.spec)
            raise

    def _approve_destinations(self, spec: UpstreamSpec, discovery: Discovery) -> UpstreamSpec:
        """`_approving`, and the pool told: its later discoveries and calls hold to what is approved."""
        approved = approving(spec, discovery)
        if approved is not spec and self.pool.spec_of(spec.name) == spec:
            self.pool.adopt([approved])
        return approved

    async def _check_moved(self, old: UpstreamSpec, spec: UpstreamSpec) -> None:
        if spec.team != old.team:
            await self._check_team(spec.team)

    def _busy(self, name: str) -> bool:
        """Whether upstream `name` is being changed, deleted or discovered right now."""
        lock = self._change_locks.get(name)
        return lock is not None and lock.locked()

    @asynccontextmanager
    async def _changing(self, name: str) -> AsyncIterator[None]:
        """Held while upstream `name` is changed or deleted (not the write lock: a change may take a
        discovery's time, and other upstreams' changes need not wait for it)."""
        lock = self._change_locks.setdefault(name, anyio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._change_locks.pop(name, None)

    async def delete_upstream(self, name: str, *, force: bool, revision: int | None = None) -> None:
        """Delete the upstream; with `revision`, only if it is still at it, else StaleWrite."""
        async with self._changing(name):  # not while a change's discovery may reopen it
            self.upstream(name)
            await self._delete_upstream(name, force=force, revision=revision)

    async def _delete_upstream(self, name: str, *, force: bool, revision: int | None = None) -> None:
        async with self._write_lock:
            users = self.servers_using(name)
            if users and not force:
                raise Conflict(
                    f"upstream {name!r} is used by virtual servers {', '.join(users)}; "
                    "remove it from them first, or delete with force=true to detach it"
                )
            for server in users:  # as stored: what another replica saves in it meanwhile is read again, not undone
                await on_fresh_state(f"virtual server {server!r}", partial(self._detach_from, server, name), checkpoint)
            await self.repo.delete_upstream(name, revision=revision)
            # Before the write lock is let go: a server saved next must not find the upstream there.
            await self.rebuild()
        await self.pool.close(name)

    async def refresh_upstream(self, name: str, *, quiet: bool = False, user: str | None = None) -> Discovery | None:
        """Rediscover an upstream's items and record its health; raises unless `quiet`. A per-user
        OAuth upstream is discovered over `user`'s own connection (or any connected user's)."""
        # One at a time with its changes and other refreshes: a change would close the connection this
        # discovers over, and two refreshes at once would save the same items and pins twice.
        async with self._changing(name):
            return await self._refresh(name, quiet=quiet, user=user)

    async def reconnect_user(self, name: str, user: str, save: Callable[[], Awaitable[None]]) -> None:
        """`save` a user's new credentials for per-user upstream `name`, then rediscover it over them; a
        second connection of the same upstream at once waits, rather than closing this one's mid-way.
        Once it has a catalog, a user connecting while it is being changed or discovered does not wait
        for that to rediscover it again (users connecting at once would each wait for all before)."""
        async with self._changing(name):
            await save()
            await self.pool.forget_user(name, user)  # its next call uses the new credentials
        if self._busy(name) and any(i.upstream == name for i in self.snapshot.items):
            return
        async with self._changing(name):
            await self._refresh(name, quiet=True, user=user)

    async def _refresh(self, name: str, *, quiet: bool, user: str | None) -> Discovery | None:
        upstream = self.upstream(name)
        if not upstream.spec.enabled:
            if quiet:
                return None
            raise Conflict(f"upstream {name!r} is disabled; enable it to refresh")
        try:
            return await self._rediscover(name, user)
        except BastionError:
            if quiet:
                return None
            raise
        finally:
            await self.rebuild()

    async def _rediscover(self, name: str, user: str | None = None) -> Discovery:
        """Discover and save what changed (items only when they did), without a snapshot rebuild.

        A failure is recorded as the upstream's unhealthy status, then raised.
        """
        try:
            discovery = await self.pool.rediscover(name, user)
        except UpstreamNotConnected:
            raise  # nobody to discover it as: says nothing about its health
        except BastionError as exc:
            await self._save_state(name, status="unhealthy", status_reason=exc.detail)
            raise
        current = {(i.kind, i.key): i.definition for i in self.snapshot.items if i.upstream == name}
        if current != {(i.kind, i.key): i.definition for i in discovery.items}:
            await self.repo.replace_items(name, discovery.items)
        if name in self.snapshot.pins.trusting and discovery.items:
            # Only if still trusted when saved: the trust is one discovery's, and another replica's (made
            # on what it read when this one's snapshot said the same) may have taken it. This one's
            # items then wait for an admin like any other change.
            now = datetime.now(UTC)
            await self.repo.approve_trusted(name, [approve(i, "first discovery", now) for i in discovery.items])
        stored = self.snapshot.upstreams.get(name)
        if stored is not None and approving(stored.spec, discovery) != stored.spec:
            # Saved before origins were approved (or per-user, its first discovery): approved as found now.
            with suppress(StaleWrite):  # another replica changed it meanwhile: its discovery approves
                await self.repo.update_upstream_spec(approving(stored.spec, discovery), revision=stored.revision)
                self._approve_destinations(stored.spec, discovery)
        await self.repo.save_upstream_state(name, _healthy(discovery))
        return discovery

    async def _approve_all(self, name: str, items: tuple[CatalogItem, ...], actor: str) -> None:
        """Pin every item of a first discovery; with nothing to pin yet, trust the next discovery."""
        if items:
            now = datetime.now(UTC)
            await self.repo.save_pins([approve(i, actor, now) for i in items])
        await self.repo.set_pin_trust(name, not items)

    async def _save_state(self, name: str, **changes: object) -> None:
        current = self.snapshot.upstreams.get(name)
        if current is not None:
            await self.repo.save_upstream_state(name, current.state.model_copy(update=changes))

    async def upstream_changed(self, name: str, method: str) -> None:
        """An upstream said a list changed: refresh it, once per burst of notifications.

        A notification that arrives while a refresh is running asks for one more refresh after
        it, so a change made during discovery is never missed.
        """
        if name in self._refreshing:
            self._refresh_again.add(name)
            return
        self._refreshing.add(name)

        async def refresh() -> None:
            try:
                while True:
                    self._refresh_again.discard(name)
                    if name not in self.snapshot.upstreams:
                        return
                    await self.refresh_upstream(name, quiet=True)
                    if name not in self._refresh_again:
                        return
            finally:
                self._refreshing.discard(name)

        log.info("upstream %s sent %s; refreshing", name, method)
        self.runner.spawn(f"refresh:{name}", refresh)

    async def check_health(self) -> None:
        """Rediscover every enabled upstream over its live session: health, last-seen and a fresh
        catalog for upstreams that never send list_changed. One snapshot rebuild at the end."""
        for name, upstream in list(self.snapshot.upstreams.items()):
            if upstream.spec.enabled and name not in self._refreshing and not self._busy(name):
                # (A busy upstream is being changed or discovered right now: that says how it is.)
                try:
                    async with self._changing(name):  # see refresh_upstream
                        if name in self.snapshot.upstreams:
                            await self._rediscover(name)
                except UpstreamNotConnected:
                    pass  # a per-user upstream with no user connected right now: nothing to check
                except BastionError as exc:
                    log.warning("upstream %s is unhealthy: %s", name, exc.detail)
        await self.rebuild()
        await self.pool.reap_idle()

    async def _health_loop(self) -> None:
        while True:
            await anyio.sleep(self.health_interval)
            if self.leadership is not None and not self.leadership.is_leader():
                # Another replica checks health; this one learns the results through the feed. Its
                # idle upstream sessions are its own to close, whoever leads.
                try:
                    await self.pool.reap_idle()
                except Exception:
                    log.exception("closing idle upstream sessions failed")
                continue
            self.health_checks += 1
            try:
                await self.check_health()
            except Exception:
                log.exception("health check failed")

    # -- vault -------------------------------------------------------------------------------

    async def rotate_vault(self) -> RewrapReport:
        """Re-wrap every stored secret under the current vault key; callers keep working meanwhile
        (previous keys in the ring still open what is not re-wrapped yet)."""
        report = await self.repo.rewrap_secrets()
        log.info(
            "vault rotation to key %s: %d re-wrapped, %d already current, %d do not open",
            report.key_id, report.rewrapped, report.already_current, len(report.failed),
        )
        return report

    # -- catalog -----------------------------------------------------------------------------

    def find_item(self, kind: ItemKind, gateway_name: str) -> CatalogItem:
        for item in self.snapshot.items:
            if item.gateway_name == gateway_name and (
                item.kind == kind or (kind == "resource" and item.kind == "resource_template")
            ):
                return item
        raise NotFound(f"{kind.replace('_', ' ')} {gateway_name!r} does not exist in the catalog")

    async def change_item(
        self, item: CatalogItem, change: Callable[[CatalogItem], CatalogItem], *, may_drop_prefix: bool = False
    ) -> CatalogItem:
        """Save an enable/rename/redescribe (`change`) of `item` as it is now, refusing a rename that would
        collide anywhere or leave its upstream's namespace (`may_drop_prefix`: an admin may give a bare
        name, see check_rename). One at a time, each checked against the last one saved: two changes
        at once neither undo each other nor both take one name (nor two on different replicas: the one
        saved second is made again on what the first saved)."""
        ident, what = (item.upstream, item.kind, item.key), f"{item.kind.replace('_', ' ')} {item.gateway_name!r}"

        async def attempt() -> CatalogItem:
            current = next((i for i in self.snapshot.items if (i.upstream, i.kind, i.key) == ident), None)
            if current is None:
                raise NotFound(f"{what} does not exist in the catalog")
            return await self._update_item(change(current), current, may_drop_prefix=may_drop_prefix)

        async with self._write_lock:
            return await on_fresh_state(what, attempt, partial(self.rebuild, announce=False))

    async def _update_item(self, item: CatalogItem, current: CatalogItem, *, may_drop_prefix: bool) -> CatalogItem:
        override = item.name_override
        if override is not None and override != current.name_override:
            if item.kind not in ("tool", "prompt"):
                raise BadRequest("only tools and prompts can be renamed")
            if not is_valid_tool_name(override):
                raise BadRequest(f"name {override!r} breaks the MCP name rules (1-128 of A-Z a-z 0-9 _ - .)")
            check_rename(item.upstream, override, may_drop_prefix=may_drop_prefix)
            for other in self.snapshot.items:
                same = other.kind == item.kind and (other.upstream, other.key) != (item.upstream, item.key)
                if same and override in (other.gateway_name, other.name_override):
                    raise NameCollision(f"{item.kind} name {override!r} is already used by {other.gateway_name!r}")
        items = [item if (i.upstream, i.kind, i.key) == (item.upstream, item.kind, item.key) else i for i in self.snapshot.items]
        for name, view in self.snapshot.servers.items():
            try:
                compose(view.spec, items, self.snapshot.upstreams, strict=True)
            except NameCollision as exc:
                # A collision the server already had (an upstream changed after it was accepted)
                # must not block unrelated edits, nor the edit that resolves it.
                known = self.snapshot.problems.get(name, ())
                new = [c for c in exc.extra.get("collisions", [exc.detail]) if c not in known]
                if new:
                    raise NameCollision("; ".join(new), collisions=new) from None
            except TransformError as exc:
                # Likewise a transform a refresh left unfitting (its tool is held already).
                if f"{exc.detail}; the tool is held" not in self.snapshot.problems.get(name, ()):
                    raise
        await self.repo.update_item(item, was=current)
        await self.rebuild()
        return self.find_item(item.kind, item.gateway_name)
