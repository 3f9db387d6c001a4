"""The whole-catalog reads a snapshot is built from (items and pin records), decoded off the event
loop and reused while a row stays the same: what another replica changed is always read anew."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.core.models import CatalogItem, Upstream, UpstreamSpec
from bastion.core.pinning import approve
from bastion.store.sql.decoded_rows import DecodedRows
from bastion.store.sql.migrate import upgrade
from bastion.store.sql.repo import SqlConfigRepo, make_engine
from bastion.vault.envelope import Envelope
from bastion.vault.keys import load_key_ring
from tests.store.test_migrations import fresh_database

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def tool(upstream: str, name: str, description: str = "plain") -> CatalogItem:
    definition = {
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": {"q": {"type": "string", "enum": ["é", "\u202e"]}}},
    }
    return CatalogItem(upstream=upstream, kind="tool", key=name, gateway_name=f"{upstream}__{name}", definition=definition)


@asynccontextmanager
async def two_replicas(kind: str, tmp_path: Path) -> AsyncIterator[tuple[SqlConfigRepo, SqlConfigRepo]]:
    """Two repositories, each with its own engine, on one database (as two replicas have)."""
    ring = load_key_ring(key=base64.b64encode(os.urandom(32)).decode(), key_file=tmp_path / "k", previous=[], may_generate=False)
    async with fresh_database(kind, tmp_path) as url:
        engines = [make_engine(url), make_engine(url)]
        try:
            await upgrade(engines[0])
            yield SqlConfigRepo(engines[0], Envelope(ring)), SqlConfigRepo(engines[1], Envelope(ring))
        finally:
            for engine in engines:
                await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_read_sees_every_change_another_replica_made_and_reuses_only_unchanged_rows(kind: str, tmp_path: Path) -> None:
    async with two_replicas(kind, tmp_path) as (reader, writer):
        for name in ("a", "b"):
            items = [tool(name, "one"), tool(name, "two")]
            await writer.create_upstream(Upstream(spec=UpstreamSpec(name=name, transport="stdio", command="x")), items)
            await writer.save_pins([approve(i, "admin", NOW) for i in items])

        first = await reader.list_items()
        expected = [tool("a", "one"), tool("a", "two"), tool("b", "one"), tool("b", "two")]
        assert [(i.upstream, i.key, i.definition) for i in first] == [(i.upstream, i.key, i.definition) for i in expected]
        assert first[0].definition["inputSchema"]["properties"]["q"]["enum"] == ["é", "\u202e"]
        pins_before = await reader.list_pins()

        # Another replica: an override on a/one, b rediscovered with b/two changed, a/two's pin rejected.
        await writer.update_item(first[0].model_copy(update={"name_override": "renamed"}), was=first[0])
        await writer.replace_items("b", [tool("b", "one"), tool("b", "two", "changed")])
        await writer.save_pins([pins_before.records[1].model_copy(update={"rejected_hash": "f" * 64})])

        second = await reader.list_items()
        by_key = {(i.upstream, i.key): i for i in second}
        assert by_key["a", "one"].name_override == "renamed"
        assert by_key["b", "two"].definition["description"] == "changed"
        assert by_key["a", "two"] is first[1]  # untouched: the value read last time
        assert by_key["a", "one"] is not first[0]
        pins_after = await reader.list_pins()
        assert pins_after.records[1].rejected_hash == "f" * 64
        assert pins_after.records[0] is pins_before.records[0]
        assert [p.approved for p in pins_after.records] == [p.approved for p in pins_before.records]

        await writer.delete_upstream("a")
        assert {i.upstream for i in await reader.list_items()} == {"b"}
        assert {p.upstream for p in (await reader.list_pins()).records} == {"b"}


async def test_decoded_rows_forget_rows_no_longer_read() -> None:
    made: list[tuple[object, ...]] = []

    def make(row: tuple[object, ...]) -> str:
        made.append(row)
        return f"value of {row}"

    rows = DecodedRows(make)
    first = await rows.values([(1, "x"), (2, "y")])
    again = await rows.values([(2, "y")])
    assert again[0] is first[1] and made == [(1, "x"), (2, "y")]
    await rows.values([(1, "x")])  # forgotten after the read that left it out: made again
    assert made == [(1, "x"), (2, "y"), (1, "x")]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_an_upstream_of_twelve_thousand_items_is_rediscovered(kind: str, tmp_path: Path) -> None:
    """The items a rediscovery keeps are not spelled out in one statement: PostgreSQL refused a
    NOT IN of ~10,000 (kind, key) pairs ("stack depth limit exceeded"), so such an upstream could not
    be rediscovered at all (5,000 tools and 5,000 resources is within the default caps)."""
    async with two_replicas(kind, tmp_path) as (repo, _):
        before = [tool("big", f"t{n}") for n in range(12_000)]
        await repo.create_upstream(Upstream(spec=UpstreamSpec(name="big", transport="stdio", command="x")), before)
        stored = await repo.list_items()
        await repo.update_item(stored[5].model_copy(update={"enabled": False}), was=stored[5])

        after = [tool("big", f"t{n}", "changed" if n == 7 else "plain") for n in range(1, 12_001)]
        result = await repo.replace_items("big", after)
        assert len(result) == 12_000
        by_key = {i.key: i for i in result}
        assert "t0" not in by_key and "t12000" in by_key
        assert by_key["t7"].definition["description"] == "changed"
        assert by_key[stored[5].key].enabled is False  # the operator's edit of a kept item stays
