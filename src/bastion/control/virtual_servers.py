"""The control plane's virtual servers: saving, changing and deleting them, and taking a deleted
upstream out of the servers that use it. A part of `Gateway` (whose snapshot, store and write lock
it uses), kept apart from its upstreams and catalog."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import anyio

from bastion.control.stale import on_fresh_state
from bastion.core.compose import compose
from bastion.core.errors import BadRequest, NotFound
from bastion.core.models import VirtualServerSpec
from bastion.core.naming import check_slug
from bastion.core.ports import ConfigRepo
from bastion.core.snapshot import Snapshot


class VirtualServers:
    repo: ConfigRepo
    snapshot: Snapshot
    team_exists: Callable[[str], Awaitable[bool]] | None
    _write_lock: anyio.Lock

    async def rebuild(self, *, announce: bool = True) -> Snapshot:
        raise NotImplementedError  # Gateway's

    async def _check_team(self, team: str | None) -> None:
        if team is not None and self.team_exists is not None and not await self.team_exists(team):
            raise BadRequest(f"no such team {team!r}")

    def servers_using(self, upstream: str) -> list[str]:
        out = []
        for name, view in self.snapshot.servers.items():
            spec = view.spec
            refs = set(spec.tools) | set(spec.prompts) | set(spec.resources)
            if upstream in spec.upstreams or any(r.startswith(f"{upstream}__") for r in refs):
                out.append(name)
        return sorted(out)

    async def save_server(self, spec: VirtualServerSpec, *, create: bool, revision: int | None = None) -> int:
        """Create or save `spec`; with `revision` (as read), only if it is still at it, else StaleWrite.
        Returns the revision it is saved at."""
        check_slug(spec.name, "virtual server")
        async with self._write_lock:
            return await self._save_server(spec, create=create, revision=revision)

    async def change_server(
        self, name: str, change: Callable[[VirtualServerSpec], Awaitable[VirtualServerSpec]]
    ) -> None:
        """Save `change` applied to the server as stored now, one change at a time: of two changes made
        at once, the second applies to what the first saved instead of undoing it."""

        async def attempt() -> None:
            stored = await self.repo.get_server_revision(name)
            if stored is None:
                raise NotFound(f"virtual server {name!r} does not exist")
            current, revision = stored
            await self._save_server(await change(current), create=False, revision=revision)

        async with self._write_lock:
            await on_fresh_state(f"virtual server {name!r}", attempt, partial(self.rebuild, announce=False))

    async def _save_server(self, spec: VirtualServerSpec, *, create: bool, revision: int | None = None) -> int:
        await self._check_team(spec.team)
        view, _ = compose(spec, self.snapshot.items, self.snapshot.upstreams, strict=True)
        limited = set(spec.rate_limits.tools) if spec.rate_limits is not None else set()
        if limited - set(view.tools):
            unknown = ", ".join(map(repr, sorted(limited - set(view.tools))))
            raise BadRequest(f"rate_limits.tools names tools this server does not expose: {unknown}")
        saved = await self.repo.save_server(spec, create=create, revision=revision)
        # Before the write lock is let go: the next writer checks against a snapshot that has this
        # server (deleting an upstream it uses is refused, not done under it).
        await self.rebuild()
        return saved

    async def delete_server(self, name: str, *, revision: int | None = None) -> None:
        """Delete the server; with `revision`, only if it is still at it, else StaleWrite."""
        await self.repo.delete_server(name, revision=revision)
        await self.rebuild()

    async def _detach_from(self, server: str, upstream: str) -> None:
        if (stored := await self.repo.get_server_revision(server)) is not None:
            await self.repo.save_server(_detach(stored[0], upstream), create=False, revision=stored[1])


def _detach(spec: VirtualServerSpec, upstream: str) -> VirtualServerSpec:
    prefix = f"{upstream}__"

    def keep(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if not n.startswith(prefix))

    return spec.model_copy(
        update={
            "tools": keep(spec.tools),
            "prompts": keep(spec.prompts),
            "resources": keep(spec.resources),
            "upstreams": tuple(u for u in spec.upstreams if u != upstream),
        }
    )
