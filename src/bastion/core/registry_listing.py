"""MCP Registry listings: registry sources, cached entries, reading v0.1 list answers, and search.

A v0.1 list answer is `{"servers": [{"server": <server.json>, "_meta": {...}}], "metadata":
{"nextCursor": ..., "count": ...}}`; the official registry marks the newest version of each server
with `_meta["io.modelcontextprotocol.registry/official"]["isLatest"]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bastion.core.errors import BadRequest
from bastion.core.registry import check_server, version_key
from bastion.core.values import Frozen, nul_at, unfit_number_at

OFFICIAL_META = "io.modelcontextprotocol.registry/official"
META_LIMITS = {"updatedAt": 64, "status": 32}
"""The longest official metadata an entry is cached with (the registry_entries columns)."""


class RegistrySource(Frozen):
    """Where listings come from: an MCP Registry API base URL, or a local file/directory of server.json."""

    name: str
    url: str | None = None
    path: str | None = None
    refreshed_at: datetime | None = None
    error: str | None = None
    entries: int = 0


class RegistryEntry(Frozen):
    """One version of one server as a source lists it."""

    source: str
    name: str
    version: str
    latest: bool
    document: dict[str, Any]
    updated_at: str | None = None
    status: str | None = None


def entries_from_page(source: str, page: Any, where: str) -> tuple[list[RegistryEntry], str | None]:
    """The entries of one v0.1 list answer and its next cursor; BadRequest if it is not one."""
    if not isinstance(page, dict) or not isinstance(page.get("servers"), list):
        raise BadRequest(f"{where}: not an MCP Registry list answer (no 'servers' list)")
    out = [_entry(source, wrapped, where) for wrapped in page["servers"]]
    metadata = page.get("metadata")
    cursor = metadata.get("nextCursor") if isinstance(metadata, dict) else None
    return out, cursor if isinstance(cursor, str) and cursor else None


def _entry(source: str, wrapped: Any, where: str) -> RegistryEntry:
    if not isinstance(wrapped, dict):
        raise BadRequest(f"{where}: every entry of 'servers' must be an object")
    doc = wrapped.get("server", wrapped)
    doc = check_server(doc, where)
    meta = wrapped.get("_meta")
    official = meta.get(OFFICIAL_META) if isinstance(meta, dict) else None
    official = official if isinstance(official, dict) else {}
    texts = {key: value for key in META_LIMITS if isinstance(value := official.get(key), str)}
    for key, value in texts.items():
        if len(value) > META_LIMITS[key]:
            raise BadRequest(f"{where}: {doc['name']}: {key!r} must be at most {META_LIMITS[key]} characters")
    # The cache is a database: PostgreSQL stores no NUL in text, and the document's text ends up in columns.
    if nul_at(doc) is not None or any("\x00" in value for value in texts.values()):
        raise BadRequest(f"{where}: {doc['name']}: the entry holds a NUL character (\\u0000)")
    if (unfit := unfit_number_at(doc)) is not None:  # nor can its JSON column hold one of these
        raise BadRequest(f"{where}: {doc['name']}: {unfit!r} holds NaN or a number past a float's range")
    return RegistryEntry(
        source=source, name=doc["name"], version=doc["version"], latest=bool(official.get("isLatest", False)),
        document=doc, updated_at=texts.get("updatedAt"), status=texts.get("status"),
    )


def entries_from_file(source: str, data: Any, where: str) -> list[RegistryEntry]:
    """A local file: one server.json, a JSON list of them, or a saved list answer."""
    if isinstance(data, dict) and "servers" in data:
        return entries_from_page(source, data, where)[0]
    docs = data if isinstance(data, list) else [data]
    return [_entry(source, {"server": d}, where) for d in docs]


def merge(old: Iterable[RegistryEntry], new: Iterable[RegistryEntry]) -> list[RegistryEntry]:
    """`new` over `old` by (name, version), then exactly one latest per server: the one a source
    marked latest (newest marking wins), else the highest version."""
    by_key = {(e.name, e.version): e for e in old}
    marked: dict[str, str] = {}
    for entry in new:
        by_key[(entry.name, entry.version)] = entry
        if entry.latest:
            marked[entry.name] = entry.version
    for entry in by_key.values():
        if entry.latest and entry.name not in marked:
            marked[entry.name] = entry.version
    names = {e.name for e in by_key.values()}
    for name in names:
        if name not in marked:
            versions = [e.version for e in by_key.values() if e.name == name]
            marked[name] = max(versions, key=version_key)
    return sorted(
        (e.model_copy(update={"latest": marked[e.name] == e.version}) for e in by_key.values()),
        key=lambda e: (e.name, version_key(e.version)),
    )


def search(entries: Iterable[RegistryEntry], text: str, limit: int = 50) -> list[RegistryEntry]:
    """Latest entries matching every word of `text` in name, title or description; name hits first."""
    words = [w for w in text.lower().split() if w]
    scored: list[tuple[int, str, RegistryEntry]] = []
    for entry in entries:
        if not entry.latest:
            continue
        name = entry.name.lower()
        doc = entry.document
        rest = f"{doc.get('title') or ''} {doc.get('description') or ''}".lower()
        if all(w in name or w in rest for w in words):
            scored.append((-sum(2 if w in name else 1 for w in words), entry.name, entry))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [e for _, _, e in scored[:limit]]
