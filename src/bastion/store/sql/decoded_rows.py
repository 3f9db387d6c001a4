"""Whole-catalog reads turned into values off the event loop, reusing what an unchanged row gave.

Every configuration change (on any replica) reads every catalog item and pin record again to
build the next snapshot. Decoding them (each definition's JSON, a model per row) on the event loop
stopped every request of that replica for ~0.2 s per table at 10,000 tools (bench/snapshot_reads.py).
The JSON columns are read as text instead, and the rows are made into values in a worker thread;
a row equal to one read last time (the same text in every column) gives the value it gave then,
so a change to one upstream decodes that upstream's rows, not the whole catalog's.

The values are shared between reads, as they already are between snapshots: nothing may change
them in place (models are frozen; their definition dicts are copied before they are edited).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import anyio

T = TypeVar("T")

Row = tuple[Any, ...]


class DecodedRows(Generic[T]):
    """Rows made into values by `make`, remembered from one read to the next (the last read only:
    rows gone from the table are forgotten with it)."""

    def __init__(self, make: Callable[[Row], T]) -> None:
        self._make = make
        self._known: dict[Row, T] = {}

    async def values(self, rows: Sequence[Sequence[Any]]) -> list[T]:
        return await anyio.to_thread.run_sync(self._decode, rows)

    def _decode(self, rows: Sequence[Sequence[Any]]) -> list[T]:
        known, make = self._known, self._make
        fresh: dict[Row, T] = {}
        out: list[T] = []
        for row in rows:
            key = tuple(row)
            value = known.get(key)
            if value is None:
                value = make(key)
            fresh[key] = value
            out.append(value)
        self._known = fresh  # two reads at once each leave a complete map: either will do
        return out
