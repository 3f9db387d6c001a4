"""One upstream exposed as one virtual server, with its catalog kept in memory (no database).

What `bastion wrap` runs instead of the `Gateway`: discover once, serve the snapshot, and rebuild
it whenever the upstream says a list changed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bastion.core.errors import BastionError
from bastion.core.models import Discovery, Upstream, UpstreamSpec, UpstreamState, VirtualServerSpec
from bastion.core.snapshot import Snapshot, build_snapshot
from bastion.tasks import TaskRunner
from bastion.upstream.pool import UpstreamPool

log = logging.getLogger("bastion.control")

ChangeListener = Callable[[Snapshot, Snapshot], Awaitable[None]]


def standalone_snapshot(spec: UpstreamSpec, discovery: Discovery, server: str, version: int) -> Snapshot:
    """A snapshot with `spec` as the only upstream, exposed whole under its own names by `server`."""
    state = UpstreamState(
        status="healthy",
        last_seen=datetime.now(UTC),
        server_name=discovery.server_name,
        server_version=discovery.server_version,
        protocol_version=discovery.protocol_version,
    )
    view = VirtualServerSpec(name=server, upstreams=(spec.name,), prefix="never")
    # One local upstream with nobody to approve anything: no pinning.
    unpinned = spec.model_copy(update={"pin": "off"})
    return build_snapshot([Upstream(spec=unpinned, state=state)], discovery.items, [view], version=version)


class StandaloneCatalog:
    """Holds the snapshot of one wrapped upstream and refreshes it on list_changed."""

    def __init__(self, spec: UpstreamSpec, runner: TaskRunner, *, server: str) -> None:
        self.spec = spec
        self.server = server
        self._runner = runner
        self._pool: UpstreamPool | None = None
        self._snapshot = Snapshot()
        self._listeners: list[ChangeListener] = []
        self._refreshing = False
        self._refresh_again = False

    def current(self) -> Snapshot:
        return self._snapshot

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    async def start(self, pool: UpstreamPool) -> Discovery:
        """Start the upstream and build the first snapshot; raises if it cannot be reached."""
        self._pool = pool
        discovery = await pool.discover(self.spec)
        await self._swap(discovery)
        return discovery

    async def upstream_changed(self, name: str, method: str) -> None:
        """The pool's notification callback: refresh, once per burst of notifications."""
        if name != self.spec.name or self._pool is None:
            return
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        log.info("upstream %s sent %s; refreshing", name, method)
        self._runner.spawn(f"refresh:{name}", self._refresh_loop)

    async def _refresh_loop(self) -> None:
        try:
            while True:
                self._refresh_again = False
                await self.refresh()
                if not self._refresh_again:
                    return
        finally:
            self._refreshing = False

    async def refresh(self) -> None:
        """Rediscover the upstream and swap the snapshot; a failure keeps the last good one."""
        assert self._pool is not None, "start() runs first"
        try:
            discovery = await self._pool.rediscover(self.spec.name)
        except BastionError as exc:
            log.warning("upstream %s: refresh failed: %s", self.spec.name, exc.detail)
            return
        await self._swap(discovery)

    async def _swap(self, discovery: Discovery) -> None:
        old = self._snapshot
        new = standalone_snapshot(self.spec, discovery, self.server, old.version + 1)
        for problem in new.problems.get(self.server, ()):
            log.warning("%s: %s", self.server, problem)
        self._snapshot = new
        for listener in self._listeners:
            try:
                await listener(old, new)
            except Exception:
                log.exception("change listener failed")
