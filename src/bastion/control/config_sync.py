"""Configuration as code: export the configuration as a document, and bring the configuration to a
document (import, `serve --config`).

An import checks the whole document first (shape, names, addresses, teams, users, policy subjects,
secrets, servers against the catalog where their upstreams stay as they are) and changes nothing if
any of it is wrong. Then it applies the plan through the same use cases the REST API uses
(`Gateway.register_upstream`, `Teams`, `Registries`, ...), so every rule they enforce applies here.
What only an upstream can tell (it answers; it offers the tools a server names) is known when the
plan runs: a failure there stops the import, names the step, and says which steps were applied.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError

from bastion.control.gateway import Gateway
from bastion.control.policy_subjects import PolicySubjects
from bastion.control.registry import Registries
from bastion.control.stale import on_fresh_state
from bastion.control.teams import Teams
from bastion.control.upstream_input import UpstreamInput, describe_validation, to_spec
from bastion.control.users import Users
from bastion.core.compose import compose
from bastion.core.config_doc import (
    Action,
    ConfigDoc,
    Kind,
    RegistryDoc,
    ServerDoc,
    TeamDoc,
    UpstreamDoc,
    export_server,
    export_upstream,
    keep_stored_secrets,
    pin_key,
    plan,
    upstream_doc,
)
from bastion.core.errors import BadRequest, BastionError, NotFound, StaleWrite
from bastion.core.models import UpstreamSpec, VirtualServerSpec
from bastion.core.naming import check_slug
from bastion.core.pinning import PinRecord, approve, definition_hash
from bastion.core.registry_listing import RegistrySource
from bastion.core.transforms import TransformError

log = logging.getLogger("bastion.config")


def _or_current(approved: dict[str, str] | None, current: BaseModel | None) -> dict[str, str] | None:
    """Pins a document leaves out are compared as they are (it does not manage them)."""
    if approved is not None:
        return approved
    return current.approved if isinstance(current, UpstreamDoc) else None


class _Desired:
    """The checked document: what each kind should be, ready for the use cases."""

    def __init__(self) -> None:
        self.teams: dict[str, TeamDoc] = {}
        self.registries: dict[str, RegistryDoc] = {}
        self.upstreams: dict[str, UpstreamSpec] = {}
        self.approved: dict[str, dict[str, str] | None] = {}
        """Per upstream, the pins the document sets (None: it leaves them be)."""
        self.servers: dict[str, VirtualServerSpec] = {}
        self.revisions: dict[str, int] = {}
        """Per upstream, the revision its spec was made from (what it keeps of the stored one)."""
        self.server_revisions: dict[str, int] = {}
        """Per server, likewise (it keeps the stored one's owner)."""


class ConfigSync:
    def __init__(
        self, gateway: Gateway, teams: Teams, users: Users, registries: Registries, subjects: PolicySubjects | None
    ) -> None:
        self.gateway = gateway
        self.teams = teams
        self.users = users
        self.registries = registries
        self.subjects = subjects
        self._applying = anyio.Lock()

    # -- export ------------------------------------------------------------------------------

    async def export(self) -> ConfigDoc:
        emails = {u.id: u.email for u in await self.users.list()}
        snap = self.gateway.snapshot
        servers = []
        for name in sorted(snap.servers):
            spec = snap.servers[name].spec
            if spec.policy is not None:
                spec = spec.model_copy(update={"policy": PolicySubjects.shown(spec.policy, emails)})
            servers.append(export_server(spec))
        return ConfigDoc(
            teams=tuple(
                TeamDoc(name=t.name, members=tuple(sorted(emails.get(m, m) for m in t.members)))
                for t in sorted(await self.teams.list(), key=lambda t: t.name)
            ),
            registries=tuple(
                RegistryDoc(name=s.name, url=s.url, path=s.path)
                for s in sorted(await self.registries.repo.list_sources(), key=lambda s: s.name)
            ),
            upstreams=tuple(
                export_upstream(snap.upstreams[n].spec, self._approved(n) or None) for n in sorted(snap.upstreams)
            ),
            servers=tuple(servers),
        )

    # -- import ------------------------------------------------------------------------------

    def _approved(self, upstream: str) -> dict[str, str]:
        records = self.gateway.snapshot.pins.records
        return {
            pin_key(r.kind, r.key): r.approved_hash
            for r in sorted(records, key=lambda r: (r.kind, r.key))
            if r.upstream == upstream and r.approved is not None and r.approved_hash is not None
        }

    async def _sync_pins(self, upstream: str, approved: Mapping[str, str], actor: str) -> None:
        """Pin what the document approves where the definition is that one; unpin the rest (it waits
        for an admin). An approved hash the upstream no longer serves keeps its record (a change waits).

        Each record is saved only if the store still holds the record and definition this replica read
        (else StaleWrite: the apply is planned again on fresh state), not over an admin's decision or a
        rediscovery another replica saved since (unpinning what the document and that admin approved)."""
        snap = self.gateway.snapshot
        records = {(r.kind, r.key): r for r in snap.pins.records if r.upstream == upstream}
        now = datetime.now(UTC)
        decisions: list[tuple[PinRecord, bool, PinRecord | None, str]] = []
        """(record, keep it or forget it, the record read, the definition's hash read)"""
        for item in snap.items:
            if item.upstream != upstream:
                continue
            want = approved.get(pin_key(item.kind, item.key))
            have = records.get((item.kind, item.key))
            served = definition_hash(item.kind, item.definition)
            if want is not None and want == served:
                if have is None or have.approved_hash != want:
                    decisions.append((approve(item, actor, now), True, have, served))
            elif have is not None and have.approved is not None and have.approved_hash != want:
                decisions.append((have, False, have, served))
        saved = False
        try:
            for record, keep, was, serving in decisions:
                await self.gateway.repo.decide_pin(record, keep=keep, was=was, serving=serving)
                saved = True
        finally:
            if saved:
                await self.gateway.rebuild()

    async def _current(self) -> dict[Kind, dict[str, BaseModel]]:
        snap = self.gateway.snapshot
        return {
            "team": {t.name: TeamDoc(name=t.name, members=tuple(sorted(t.members))) for t in await self.teams.list()},
            "registry": {
                s.name: RegistryDoc(name=s.name, url=s.url, path=s.path) for s in await self.registries.repo.list_sources()
            },
            "upstream": {
                n: upstream_doc(u.spec).model_copy(update={"approved": self._approved(n)}) for n, u in snap.upstreams.items()
            },
            "server": {n: export_server(v.spec) for n, v in snap.servers.items()},
        }

    async def _check(self, doc: ConfigDoc, actor: str | None) -> _Desired:
        """Everything that can be checked before changing anything; BadRequest on the first problem."""
        snap = self.gateway.snapshot
        out = _Desired()
        for team in doc.teams:
            check_slug(team.name, "team")
            members = []
            for key in team.members:
                try:
                    members.append((await self.users.get(key)).id)
                except NotFound:
                    raise BadRequest(f"team {team.name!r}: no user {key!r}") from None
            out.teams[team.name] = TeamDoc(name=team.name, members=tuple(sorted(set(members))))
        known_teams = set(out.teams) | {t.name for t in await self.teams.list()}

        def owner_team(what: str, team: str | None) -> None:
            if team is not None and team not in known_teams:
                raise BadRequest(f"{what}: no team {team!r}")

        for source in doc.registries:
            check_slug(source.name, "registry source")
            if (source.url is None) == (source.path is None):
                raise BadRequest(f"registry source {source.name!r}: give either 'url' or 'path'")
            if source.url is not None and not source.url.startswith(("http://", "https://")):
                raise BadRequest(f"registry source {source.name!r}: the URL must be http:// or https://")
            out.registries[source.name] = source
        for entry in doc.upstreams:
            current = snap.upstreams.get(entry.name)
            owner_team(f"upstream {entry.name!r}", entry.team)
            out.approved[entry.name] = entry.approved
            for key in entry.approved or {}:
                if key.split(":", 1)[0] not in ("tool", "prompt", "resource", "resource_template") or ":" not in key:
                    raise BadRequest(f"upstream {entry.name!r}: approved key {key!r} is not '<kind>:<name or URI>'")
            if current is not None:
                out.revisions[entry.name] = current.revision
            out.upstreams[entry.name] = self._upstream_spec(
                keep_stored_secrets(entry, current.spec if current else None), current.spec if current else None, actor
            )
        for server in doc.servers:
            owner_team(f"virtual server {server.name!r}", server.team)
            stored = await self.gateway.repo.get_server_revision(server.name)
            if stored is not None:
                out.server_revisions[server.name] = stored[1]
            owner = stored[0].owner if stored is not None else actor
            out.servers[server.name] = await self._server_spec(server, set(out.teams), owner)
        return out

    @staticmethod
    def _upstream_spec(entry: UpstreamDoc, current: UpstreamSpec | None, actor: str | None) -> UpstreamSpec:
        """The spec as the REST API would build it (slug, transport fields, SSRF-checked URLs)."""
        body: dict[str, Any] = entry.model_dump(exclude={"team", "visibility", "openapi", "auth", "url", "approved"}, mode="json")
        body["auth"] = entry.auth.model_dump() if entry.auth is not None else None
        if entry.openapi is not None:
            api = entry.openapi
            body |= {"base_url": api.base_url, "include": api.include.model_dump(), "exclude": api.exclude.model_dump()}
            body |= {"spec": api.spec} if api.spec is not None else {"spec_url": entry.url}
        else:
            body["url"] = entry.url
        try:
            spec = to_spec(UpstreamInput.model_validate(body))
        except ValidationError as exc:
            raise BadRequest(f"upstream {entry.name!r}: {describe_validation(exc)}") from None
        except BadRequest as exc:
            raise BadRequest(f"upstream {entry.name!r}: {exc.detail}") from None
        return spec.model_copy(update={
            "team": entry.team, "visibility": entry.visibility,
            "owner": current.owner if current is not None else actor,
            "origin": current.origin if current is not None else None,
        })

    async def _server_spec(self, entry: ServerDoc, new_teams: set[str], owner: str | None) -> VirtualServerSpec:
        check_slug(entry.name, "virtual server")
        spec = VirtualServerSpec(
            **entry.model_dump(exclude={"policy", "rate_limits", "transforms"}),
            policy=entry.policy, rate_limits=entry.rate_limits, transforms=entry.transforms, owner=owner,
        )
        if self.subjects is not None:
            try:
                spec = spec.model_copy(update={"policy": await self.subjects.resolve(spec.policy, also_teams=new_teams)})
            except BadRequest as exc:
                raise BadRequest(f"virtual server {entry.name!r}: {exc.detail}") from None
        return spec

    def _check_servers(self, desired: _Desired) -> None:
        """Servers whose upstreams stay as they are can be composed now: a name they would not find
        is refused before anything changes. (Servers on new or changed upstreams are composed when saved.)"""
        snap = self.gateway.snapshot
        moving = {n for n, s in desired.upstreams.items() if n not in snap.upstreams or upstream_doc(s) != upstream_doc(snap.upstreams[n].spec)}
        for name, spec in desired.servers.items():
            refs = {*spec.upstreams, *(r.split("__", 1)[0] for r in (*spec.tools, *spec.prompts, *spec.resources) if "__" in r)}
            if refs & moving:
                continue
            try:
                view, _ = compose(spec, snap.items, snap.upstreams, strict=True)
            except (BadRequest, TransformError) as exc:
                raise BadRequest(f"virtual server {name!r}: {exc.detail}") from None
            limited = set(spec.rate_limits.tools) if spec.rate_limits is not None else set()
            if limited - set(view.tools):
                raise BadRequest(f"virtual server {name!r}: rate_limits.tools names tools it does not expose")

    async def apply(
        self, doc: ConfigDoc, *, dry_run: bool, prune: bool, actor: str, owner: str | None = None
    ) -> list[Action]:
        """Check the document, plan, and (unless `dry_run`) apply the plan; returns the plan.

        `actor` approves what new upstreams offer (as an admin registering them does); `owner` (a
        user id, or None) owns what is created."""
        # One document at a time (REST, --config on start and SIGHUP): a second one plans against what
        # the first made, instead of failing half-way on it and taking back its own steps over the
        # first's changes.
        async with self._applying:
            # What the document leaves out (secrets, owners) is kept as read, and each step is saved only if
            # what it changes is still as read: if another replica changed it meanwhile, the plan is made
            # again on what is stored now, where the steps applied so far are done and plan nothing.
            once = partial(self._apply, doc, dry_run=dry_run, prune=prune, actor=actor, owner=owner)
            return await on_fresh_state("the configuration", once, partial(self.gateway.rebuild, announce=False))

    async def _apply(self, doc: ConfigDoc, *, dry_run: bool, prune: bool, actor: str, owner: str | None) -> list[Action]:
        desired = await self._check(doc, owner)
        self._check_servers(desired)
        current = await self._current()
        wanted: dict[Kind, Mapping[str, BaseModel]] = {
            "team": desired.teams,
            "registry": desired.registries,
            "upstream": {
                n: upstream_doc(s).model_copy(update={"approved": _or_current(desired.approved[n], current["upstream"].get(n))})
                for n, s in desired.upstreams.items()
            },
            "server": {n: export_server(s) for n, s in desired.servers.items()},
        }
        actions = plan(current, wanted, prune=prune)
        if dry_run:
            return actions
        before = await self._before(current)
        done: list[Action] = []
        made: dict[tuple[Kind, str], object] = {}
        """What each create step made, as its undo compares it: a revision, a team's members, a source."""
        for action in actions:
            try:
                made[action.kind, action.name] = await self._run(action, desired, current, actor)
            except StaleWrite as exc:
                # Not taken back (which would run discoveries and approvals again, and write over the other
                # replica's change): planned again on fresh state, or this 409 after too many tries.
                exc.detail = f"{action.line()}: {exc.detail}; the {len(done)} step(s) before it stay applied"
                exc.args = (exc.detail,)
                raise
            except Exception as exc:  # not only a BastionError: a database refusing a row is none
                undone = await self._undo(done, before, desired, wanted, actor, made)
                if not isinstance(exc, BastionError):
                    log.error("configuration: %s failed unexpectedly; %s", action.line(), undone)
                    raise
                exc.detail = f"{action.line()} failed: {exc.detail}; {undone}"
                exc.args = (exc.detail,)
                raise
            log.info("configuration: %s", action.line())
            done.append(action)
        return actions

    async def _before(self, current: Mapping[Kind, Mapping[str, BaseModel]]) -> _Desired:
        """The configuration as it is, in the form `_run` takes: what an undo brings back."""
        snap = self.gateway.snapshot
        out = _Desired()
        out.teams = {n: t for n, t in current["team"].items() if isinstance(t, TeamDoc)}
        out.registries = {n: r for n, r in current["registry"].items() if isinstance(r, RegistryDoc)}
        out.upstreams = {n: u.spec for n, u in snap.upstreams.items()}
        out.servers = {n: v.spec for n, v in snap.servers.items()}
        out.approved = {n: self._approved(n) for n in snap.upstreams}
        return out

    async def _undo(
        self,
        done: list[Action],
        before: _Desired,
        applied: _Desired,
        wanted: Mapping[Kind, Mapping[str, BaseModel]],
        actor: str,
        made: Mapping[tuple[Kind, str], object],
    ) -> str:
        """Take back the steps applied so far, newest first; says what the configuration is left as. An
        update is taken back only from what it saved, and what a step created is deleted only if it is
        still as made (another request's change since is not written over, nor deleted with it)."""
        inverse = {"create": "delete", "delete": "create", "update": "update"}
        # A step saved at revision r leaves its row at r + 1 (every write counts it up by one).
        before.revisions = {n: r + 1 for n, r in applied.revisions.items()}
        before.server_revisions = {n: r + 1 for n, r in applied.server_revisions.items()}
        failed = []
        for action in reversed(done):
            back = action.model_copy(update={"verb": inverse[action.verb]})
            try:
                await self._run(back, before, wanted, actor, made=made.get((action.kind, action.name)))
            except StaleWrite as exc:  # changed since this step: left as the other request made it
                log.warning("configuration: did not take back %s: %s", action.line(), exc.detail)
                failed.append(f"{action.line()} ({exc.detail}; left as it is)")
            except Exception as exc:  # the rest is still taken back
                known = isinstance(exc, BastionError)
                detail = exc.detail if isinstance(exc, BastionError) else type(exc).__name__
                log.error("configuration: could not take back %s: %s", action.line(), detail, exc_info=not known)
                failed.append(action.line())
        if failed:
            return f"these applied steps could not be taken back: {'; '.join(failed)}"
        return "nothing was changed" if not done else f"the steps before it were taken back ({len(done)})"

    async def _run(
        self,
        action: Action,
        desired: _Desired,
        current: Mapping[Kind, Mapping[str, BaseModel]],
        actor: str,
        *,
        made: object = None,
    ) -> object:
        """Run one step. A create returns what it made, for its undo (a delete given that as `made`)
        to delete it only if it is still that: a row's revision, a team's members, a source."""
        name, verb = action.name, action.verb
        if action.kind == "team":
            return await self._run_team(action, desired, current, made)
        if action.kind == "registry":
            if verb == "delete":
                await self.registries.remove(name, was=made if isinstance(made, RegistrySource) else None)
                return None
            doc = desired.registries[name]
            if verb == "create":
                return await self.registries.add(name, url=doc.url, path=doc.path)
            stored = current["registry"].get(name)  # as read when planned (for an undo: as applied)
            was = RegistrySource(name=name, url=getattr(stored, "url", None), path=getattr(stored, "path", None))
            await self.registries.update(name, url=doc.url, path=doc.path, was=was)
            return None
        if action.kind == "upstream":
            created = None
            if verb == "create":
                created = (await self.gateway.register_upstream(desired.upstreams[name], approve_as=actor))[0].revision
            elif verb == "update":
                await self.gateway.update_upstream(desired.upstreams[name], planned=desired.revisions.get(name))
            else:
                await self.gateway.delete_upstream(name, force=False, revision=made if isinstance(made, int) else None)
                return None
            approved = desired.approved.get(name)
            if approved is not None:
                await self._sync_pins(name, approved, actor)  # pins: the upstream's revision stays as created
            return created
        if verb == "delete":
            await self.gateway.delete_server(name, revision=made if isinstance(made, int) else None)
            return None
        revision = desired.server_revisions.get(name) if verb == "update" else None
        return await self.gateway.save_server(desired.servers[name], create=verb == "create", revision=revision)

    async def _run_team(
        self, action: Action, desired: _Desired, current: Mapping[Kind, Mapping[str, BaseModel]], made: object
    ) -> object:
        name, verb = action.name, action.verb
        if verb == "delete":
            await self.teams.delete(name, members=made if isinstance(made, tuple) else None)
            return None
        if verb == "create":
            await self.teams.create({"name": name})
        before = current["team"].get(name)
        have = set(before.members) if isinstance(before, TeamDoc) else set()
        want = set(desired.teams[name].members)
        for user in sorted(want - have):
            await self.teams.add_member(name, user)
        for user in sorted(have - want):
            await self.teams.remove_member(name, user)
        return tuple(sorted(want))
