"""MCP Registry sources: add, refresh (cached listings), browse, and install an entry as an upstream.

A source is an MCP Registry API (v0.1) base URL or a local file/directory of server.json documents
(air-gapped sites). A source that cannot be read when added is not saved; a later refresh that fails
keeps the cached listing and records why. Installing goes through `Gateway.register_upstream`, the
one registration path (ownership, address checks and pinning apply as for any upstream).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2

from bastion.control.gateway import Gateway
from bastion.core.errors import BadRequest, BastionError, Conflict, NotFound, StaleWrite
from bastion.core.models import Discovery, RegistryOrigin, Upstream
from bastion.core.naming import check_slug
from bastion.core.ports import RegistryRepo
from bastion.core.registry import PackageCommand, Prefer, default_package_command, plan_install, version_key
from bastion.core.registry_listing import (
    RegistryEntry,
    RegistrySource,
    entries_from_file,
    entries_from_page,
    merge,
    search,
)
from bastion.core.surrogates import NotUnicode, strict_loads
from bastion.upstream.registry_fetch import fetch_json

log = logging.getLogger("bastion.registry")
PAGE_LIMIT = 100
MAX_PAGES = 200
MAX_FILE_BYTES = 8 * 1024 * 1024


def _check_source(name: str, url: str | None, path: str | None) -> None:
    check_slug(name, "registry source")
    if (url is None) == (path is None):
        raise BadRequest("give a registry source either a 'url' or a 'path'")
    if url is not None and not url.startswith(("http://", "https://")):
        raise BadRequest("a registry source URL must be an absolute http:// or https:// URL")


def upstream_name_for(server: str) -> str:
    """A default upstream slug for a registry server name (`io.github.acme/weather-mcp` -> `weather-mcp`)."""
    tail = server.rsplit("/", 1)[-1].lower()
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", tail)).strip("-")[:63].strip("-")
    return slug or "registry-server"


class Registries:
    def __init__(
        self,
        repo: RegistryRepo,
        gateway: Gateway,
        http: httpx2.AsyncClient,
        *,
        deadline: float = 30.0,
        package_command: PackageCommand = default_package_command,
    ) -> None:
        self.repo = repo
        self.gateway = gateway
        self.http = http
        self.deadline = deadline
        self.package_command = package_command
        """How a package is run; tests map a package to a local binary here."""

    # -- sources --------------------------------------------------------------------------------

    async def add(self, name: str, *, url: str | None = None, path: str | None = None) -> RegistrySource:
        """Read the source once, then save it with its listing; nothing is saved if it cannot be read."""
        _check_source(name, url, path)
        if await self.repo.get_source(name) is not None:
            raise Conflict(f"registry source {name!r} already exists")
        source = RegistrySource(name=name, url=url, path=path)
        entries = await self._read(source, since=None)
        now = datetime.now(UTC)
        await self.repo.create_source(source.model_copy(update={"refreshed_at": now}), merge([], entries))
        log.info("registry source %s added with %d entries", name, len(entries))
        return await self.source(name)

    async def source(self, name: str) -> RegistrySource:
        found = await self.repo.get_source(name)
        if found is None:
            raise NotFound(f"registry source {name!r} does not exist")
        return found

    async def refresh(self, name: str, *, full: bool = False) -> RegistrySource:
        """Fetch what changed since the last refresh (or everything) and merge it into the cache.
        A failure is recorded on the source and raised; the cached listing stays.

        What was read is saved only while the source still reads from where it was read (one write,
        conditional on its URL and path): an edit that pointed it elsewhere meanwhile keeps the new
        place's listing, not the old place's (which, once stamped fresh, later incremental refreshes
        would have merged into, keeping it installable), nor the old place's failure."""
        source = await self.source(name)
        since = None if full or source.path is not None else source.refreshed_at
        now = datetime.now(UTC)
        try:
            fresh = await self._read(source, since=since)
        except BastionError as exc:
            if await self._still(source):
                await self.repo.save_listing(name, None, now, error=exc.detail)
            raise
        old = await self.repo.list_entries(name) if since is not None else []
        saved = source.model_copy(update={"refreshed_at": now, "error": None})
        try:
            await self.repo.update_source(saved, merge(old, fresh), was=source)
        except StaleWrite:
            self._moved(source)
        return await self.source(name)

    async def _still(self, read: RegistrySource) -> bool:
        """Whether the source still reads from where `read` does (else logged: its refresh is dropped).
        The failure of a refresh is recorded only then; the check and that write are two steps (an edit
        landing between them leaves an error shown until the next refresh, never a listing)."""
        stored = await self.repo.get_source(read.name)
        if stored is not None and (stored.url, stored.path) == (read.url, read.path):
            return True
        if stored is not None:
            self._moved(read)
        return False

    def _moved(self, read: RegistrySource) -> None:
        log.info("registry source %s: refresh dropped, the source was pointed elsewhere while it was read", read.name)

    async def refresh_all(self) -> None:
        """Refresh every source; one that fails, however it fails, is logged and the others are
        still refreshed (the background task that calls this is never restarted if it dies)."""
        for source in await self.repo.list_sources():
            try:
                await self.refresh(source.name)
            except BastionError as exc:
                log.warning("registry source %s: refresh failed: %s", source.name, exc.detail)
            except Exception as exc:  # a bug or the database: logged with its traceback
                log.exception("registry source %s: refresh failed: %r", source.name, exc)

    async def update(self, name: str, *, url: str | None, path: str | None, was: RegistrySource) -> RegistrySource:
        """Point the source at another URL or path: the new one is read first (nothing changes if it
        cannot be), then saved with its listing only if the source still reads from where `was` (as read)
        does, else StaleWrite: of two edits made on the same read, the second is refused, not saved over
        the first. The source is never missing in between (as a removal and an addition left it)."""
        _check_source(name, url, path)
        source = RegistrySource(name=name, url=url, path=path)
        entries = await self._read(source, since=None)
        saved = source.model_copy(update={"refreshed_at": datetime.now(UTC)})
        await self.repo.update_source(saved, merge([], entries), was=was)
        log.info("registry source %s now reads from %s, with %d entries", name, url or path, len(entries))
        return await self.source(name)

    async def remove(self, name: str, *, was: RegistrySource | None = None) -> None:
        """Delete the source; with `was`, only if it still reads from where that one does, else StaleWrite."""
        await self.repo.delete_source(name, was=was)

    async def _read(self, source: RegistrySource, *, since: datetime | None) -> list[RegistryEntry]:
        if source.path is not None:
            return await anyio.to_thread.run_sync(_read_path, source.name, source.path)
        assert source.url is not None
        base = source.url.rstrip("/")
        entries: list[RegistryEntry] = []
        cursor: str | None = None
        what = f"registry source {source.name!r}"
        for _ in range(MAX_PAGES):
            params = {"limit": str(PAGE_LIMIT)}
            if cursor:
                params["cursor"] = cursor
            if since is not None:
                params["updated_since"] = since.isoformat().replace("+00:00", "Z")
            page = await fetch_json(self.http, f"{base}/v0.1/servers", params=params, what=what, deadline=self.deadline)
            found, cursor = entries_from_page(source.name, page, what)
            entries += found
            if cursor is None:
                return entries
        raise BadRequest(f"{what} paginated past {MAX_PAGES} pages")

    # -- browsing -------------------------------------------------------------------------------

    async def search(self, text: str, source: str | None = None, limit: int = 50) -> list[RegistryEntry]:
        if source is not None:
            await self.source(source)
        return search(await self.repo.list_entries(source), text, limit)

    async def versions(self, source: str, server: str) -> list[RegistryEntry]:
        await self.source(source)
        found = [e for e in await self.repo.list_entries(source) if e.name == server]
        if not found:
            raise NotFound(f"registry source {source!r} lists no server {server!r}")
        return sorted(found, key=lambda e: version_key(e.version))

    async def entry(self, source: str, server: str, version: str | None = None) -> RegistryEntry:
        found = await self.versions(source, server)
        if version in (None, "latest"):
            return next((e for e in found if e.latest), found[-1])
        for entry in found:
            if entry.version == version:
                return entry
        listed = ", ".join(e.version for e in found)
        raise NotFound(f"registry source {source!r} lists {server!r} only in versions {listed}")

    async def latest_versions(self) -> dict[tuple[str, str], str]:
        """(source, server) -> its latest cached version, for offering updates."""
        return {(e.source, e.name): e.version for e in await self.repo.list_entries() if e.latest}

    # -- installing -----------------------------------------------------------------------------

    async def install(
        self,
        source: str,
        server: str,
        *,
        upstream: str | None,
        version: str | None,
        values: Mapping[str, str],
        prefer: Prefer | None,
        overrides: Mapping[str, Any],
        approve_as: str | None,
    ) -> tuple[Upstream, Discovery]:
        """Register the entry as an upstream (its values sealed like any credential)."""
        entry = await self.entry(source, server, version)
        name = check_slug(upstream or upstream_name_for(server), "upstream")
        plan = plan_install(
            entry.document, upstream=name, origin=RegistryOrigin(source=source, server=server, version=entry.version),
            values=values, prefer=prefer, package_command=self.package_command,
        )
        spec = plan.spec.model_copy(update=dict(overrides))
        return await self.gateway.register_upstream(spec, approve_as=approve_as)


def _read_path(source: str, path: str) -> list[RegistryEntry]:
    """Every server.json under a file or directory (*.json, sorted); BadRequest naming a bad file (not
    JSON, holding a lone surrogate, or no server.json)."""
    root = Path(path)
    if root.is_dir():
        files = sorted(root.glob("*.json"))
    elif root.is_file():
        files = [root]
    else:
        raise BadRequest(f"registry source {source!r}: {path} is neither a file nor a directory")
    entries: list[RegistryEntry] = []
    for file in files:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise BadRequest(f"registry source {source!r}: {file.name} is larger than {MAX_FILE_BYTES} bytes")
        try:
            data = strict_loads(file.read_bytes(), f"registry source {source!r}: {file.name}")
        except NotUnicode as exc:
            raise BadRequest(str(exc)) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest(f"registry source {source!r}: {file.name} is not valid JSON") from None
        entries += entries_from_file(source, data, f"{file.name}")
    return entries
