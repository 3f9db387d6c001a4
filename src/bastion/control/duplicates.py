"""Duplicate tools across upstreams (core/duplicates.py), indexed once per catalog snapshot."""

from __future__ import annotations

from bastion.control.gateway import Gateway
from bastion.core.duplicates import DuplicateGroup, DuplicateIndex, Pair, duplicates_of, group


class Duplicates:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._index: tuple[int, DuplicateIndex] | None = None

    def index(self) -> DuplicateIndex:
        """The index of the current snapshot's tools (rebuilt only when the snapshot changed)."""
        snap = self.gateway.snapshot
        if self._index is None or self._index[0] != snap.version:
            self._index = (snap.version, DuplicateIndex(i for i in snap.items if i.kind == "tool"))
        return self._index[1]

    def groups(self) -> list[DuplicateGroup]:
        index = self.index()
        return group(index.pairs(), {t.ref[1]: t.ref[0] for t in index.tools})

    def of_upstream(self, upstream: str) -> list[Pair]:
        """Which of this upstream's tools duplicate tools of other upstreams (incremental); each pair
        names this upstream's tool first."""
        index = self.index()
        mine = {index.tools[i].ref[1] for i in index.indices_of(upstream)}
        return [
            p if p.a in mine else p.model_copy(update={"a": p.b, "b": p.a}) for p in duplicates_of(index, upstream)
        ]
