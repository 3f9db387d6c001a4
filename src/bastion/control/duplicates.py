"""Duplicate tools across upstreams (core/duplicates.py), indexed once per catalog snapshot."""

from __future__ import annotations

from bastion.control.gateway import Gateway
from bastion.core.duplicates import DuplicateGroup, DuplicateIndex, Pair, duplicates_of, group


class Duplicates:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._index: tuple[int, DuplicateIndex] | None = None
        self._groups: tuple[int, list[DuplicateGroup]] | None = None

    def index(self) -> DuplicateIndex:
        """The index of the current snapshot's tools (rebuilt only when the snapshot changed)."""
        snap = self.gateway.snapshot
        if self._index is None or self._index[0] != snap.version:
            self._index = (snap.version, DuplicateIndex(i for i in snap.items if i.kind == "tool"))
        return self._index[1]

    def groups(self) -> list[DuplicateGroup]:
        """Every group of the current snapshot (computed once per snapshot: it takes a second at 10,000 tools)."""
        version = self.gateway.snapshot.version
        if self._groups is None or self._groups[0] != version:
            index = self.index()
            self._groups = (version, group(index.pairs(), {t.ref[1]: t.ref[0] for t in index.tools}))
        return list(self._groups[1])

    def of_upstream(self, upstream: str) -> list[Pair]:
        """Which of this upstream's tools duplicate tools of other upstreams (incremental); each pair
        names this upstream's tool first."""
        index = self.index()
        mine = {index.tools[i].ref[1] for i in index.indices_of(upstream)}
        return [
            p if p.a in mine else p.model_copy(update={"a": p.b, "b": p.a}) for p in duplicates_of(index, upstream)
        ]
