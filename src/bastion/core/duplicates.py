"""Duplicate detection: tools on different upstreams that do the same job.

Lexical and structural, no model: names (split into words, a few verb synonyms folded), descriptions
(TF-IDF cosine) and input schemas (argument names and types). Candidates come from an inverted index
of the rarer words, so a 10,000-tool catalog is compared in well under the O(n²) of every pair; a new
upstream's tools are compared against the index of the rest (incremental). Pure: no I/O.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

from bastion.core.models import CatalogItem
from bastion.core.values import Frozen

THRESHOLD = 0.62
"""A pair at or above this score is a duplicate."""
_WEIGHTS = (0.4, 0.35, 0.25)  # name, description, schema
_MAX_POSTING = 200  # words on more tools than this say nothing about sameness (e.g. "get", "the")
_RARE = 6  # a tool's rarest words that pick its candidates
_SCORED = 4  # candidates per tool scored in full
_SYNONYMS = {
    "get": "read", "fetch": "read", "retrieve": "read", "load": "read", "show": "read", "view": "read",
    "cat": "read", "open": "read",
    "list": "list", "ls": "list", "enumerate": "list",
    "find": "search", "query": "search", "lookup": "search", "grep": "search",
    "create": "create", "add": "create", "new": "create", "make": "create", "insert": "create",
    "update": "update", "edit": "update", "modify": "update", "patch": "update", "change": "update",
    "delete": "delete", "remove": "delete", "rm": "delete", "destroy": "delete",
    "write": "write", "save": "write", "put": "write", "store": "write",
    "dir": "directory", "folder": "directory", "dirs": "directory", "directories": "directory",
    "files": "file", "doc": "document", "docs": "document", "repo": "repository", "repos": "repository",
}
STOP_WORDS = frozenset(
    "a an the of to in on for and or with by from as at is are be this that it its into your you can "
    "will all any if not use using used given which when than then only also returns return".split()
)
_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def words(text: str) -> list[str]:
    """Lower-case words of a name or sentence: camelCase, snake_case and kebab-case split."""
    return [w.lower() for part in _SPLIT.split(text) for w in _CAMEL.split(part) if w]


def fold(word: str) -> str:
    """One form per word: common verb synonyms folded, a plural s dropped."""
    word = _SYNONYMS.get(word, word)
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@dataclass(frozen=True, slots=True)
class ToolFeatures:
    ref: tuple[str, str]  # (upstream, gateway name)
    name: str
    name_words: frozenset[str]
    description: Counter[str]
    arguments: frozenset[tuple[str, str]]  # (argument name, JSON type)


def features(item: CatalogItem) -> ToolFeatures:
    name = item.original_name
    schema = item.definition.get("inputSchema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    args: set[tuple[str, str]] = set()
    if isinstance(props, dict):
        for arg, spec in props.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            args.add(("".join(fold(w) for w in words(str(arg))), str(kind) if isinstance(kind, str) else "any"))
    desc = [fold(w) for w in words(item.description or "") if w not in STOP_WORDS and len(w) > 1]
    return ToolFeatures(
        ref=(item.upstream, item.gateway_name), name=name,
        name_words=frozenset(fold(w) for w in words(name) if w not in STOP_WORDS),
        description=Counter(desc), arguments=frozenset(args),
    )


class Pair(Frozen):
    a: str
    b: str
    score: float
    reason: str


class DuplicateGroup(Frozen):
    """Tools (gateway names) that look like one job; `score` is the weakest link that joins them."""

    tools: tuple[str, ...]
    upstreams: tuple[str, ...]
    score: float
    reason: str


def combine(name: float, desc: float, schema: float) -> float:
    """One score from the three similarities: a weighted sum, or, when the descriptions say the same
    thing and the arguments are identical, that agreement even under a different name."""
    weighted = _WEIGHTS[0] * name + _WEIGHTS[1] * desc + _WEIGHTS[2] * schema
    if desc >= 0.7 and schema >= 0.99:
        return max(weighted, 0.9 * (desc + schema) / 2)
    return weighted


def _jaccard(a: frozenset[Any], b: frozenset[Any]) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


class DuplicateIndex:
    """Features and an inverted word index of a catalog's tools, built once and queried many times.

    Candidates for a tool are the tools sharing one of its rarest words (prefix filtering): two tools
    that do the same job share their distinctive words, and common words would make every pair a
    candidate. Only the best few candidates per tool are scored in full."""

    def __init__(self, tools: Iterable[CatalogItem]) -> None:
        self.tools = [features(t) for t in tools]
        self.keys = [self._keys(t) for t in self.tools]
        self.df: Counter[str] = Counter()
        for keys in self.keys:
            self.df.update(keys)
        self.n = max(len(self.tools), 1)
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, keys in enumerate(self.keys):
            for key in keys:
                if 1 < self.df[key] <= _MAX_POSTING:
                    self.postings[key].append(i)
        self.rare = [sorted((k for k in keys if k in self.postings), key=self.df.__getitem__)[:_RARE] for keys in self.keys]
        self._idf_cache: dict[str, float] = {}
        self._norms = [self._norm(t) for t in self.tools]

    @staticmethod
    def _keys(tool: ToolFeatures) -> set[str]:
        return {f"n:{w}" for w in tool.name_words} | {f"d:{w}" for w in tool.description} | {
            f"a:{a}" for a, _ in tool.arguments
        }

    def _idf(self, word: str) -> float:
        found = self._idf_cache.get(word)
        if found is None:
            found = self._idf_cache[word] = math.log(1 + self.n / (1 + self.df.get(f"d:{word}", 0)))
        return found

    def _norm(self, tool: ToolFeatures) -> float:
        return math.sqrt(sum((c * self._idf(w)) ** 2 for w, c in tool.description.items())) or 1.0

    def _cosine(self, i: int, j: int) -> float:
        a, b = self.tools[i].description, self.tools[j].description
        if len(a) > len(b):
            a, b = b, a
        dot = sum(c * b[w] * self._idf(w) ** 2 for w, c in a.items() if w in b)
        return dot / (self._norms[i] * self._norms[j])

    def _parts(self, i: int, j: int) -> tuple[float, float, float]:
        a, b = self.tools[i], self.tools[j]
        name = 1.0 if a.name.lower() == b.name.lower() else _jaccard(a.name_words, b.name_words)
        schema = _jaccard(a.arguments, b.arguments) if (a.arguments or b.arguments) else 0.5
        return name, self._cosine(i, j), schema

    def score(self, i: int, j: int) -> Pair:
        a, b = self.tools[i], self.tools[j]
        same_name = a.name.lower() == b.name.lower()
        name, desc, schema = self._parts(i, j)
        total = combine(name, desc, schema)
        reasons = [f"same name {a.name!r}" if same_name else f"names {round(name * 100)}% alike"]
        reasons.append(f"descriptions {round(desc * 100)}% alike")
        shared = sorted(x for x, _ in a.arguments & b.arguments)
        reasons.append(f"input schemas share {', '.join(shared)}" if shared else "no shared arguments")
        return Pair(a=a.ref[1], b=b.ref[1], score=round(total, 3), reason="; ".join(reasons))

    def _candidates(self, i: int) -> list[int]:
        """The tools on other upstreams that share most of tool i's rarest words (best first)."""
        upstream = self.tools[i].ref[0]
        tools = self.tools
        shared = Counter(chain.from_iterable(self.postings[key] for key in self.rare[i]))
        out: list[int] = []
        for j, _ in heapq.nlargest(_SCORED * 4, shared.items(), key=itemgetter(1)):
            if tools[j].ref[0] != upstream:
                out.append(j)
                if len(out) == _SCORED:
                    break
        return out

    def pairs(self, among: Iterable[int] | None = None) -> list[Pair]:
        """Duplicate pairs with at least one tool in `among` (default: the whole catalog)."""
        chosen = range(len(self.tools)) if among is None else sorted(set(among))
        seen: set[tuple[int, int]] = set()
        out: list[Pair] = []
        for i in chosen:
            for j in self._candidates(i):
                key = (i, j) if i < j else (j, i)
                if key in seen:
                    continue
                seen.add(key)
                if combine(*self._parts(*key)) >= THRESHOLD:
                    out.append(self.score(*key))
        return out

    def indices_of(self, upstream: str) -> list[int]:
        return [i for i, t in enumerate(self.tools) if t.ref[0] == upstream]


def group(pairs: Iterable[Pair], upstream_of: Mapping[str, str]) -> list[DuplicateGroup]:
    """Connected groups of duplicate pairs, strongest first; each with its weakest score and best reason."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    pairs = list(pairs)
    for pair in pairs:
        parent[root(pair.a)] = root(pair.b)
    members: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        members[root(pair.a)].append(pair)
    groups = []
    for found in members.values():
        tools = sorted({p.a for p in found} | {p.b for p in found})
        best = max(found, key=lambda p: p.score)
        groups.append(
            DuplicateGroup(
                tools=tuple(tools), upstreams=tuple(sorted({upstream_of[t] for t in tools})),
                score=min(p.score for p in found), reason=f"{best.a} ~ {best.b}: {best.reason}",
            )
        )
    groups.sort(key=lambda g: (-g.score, g.tools))
    return groups


def find_duplicates(tools: Sequence[CatalogItem]) -> list[DuplicateGroup]:
    """Every group of duplicate tools across upstreams in the catalog."""
    index = DuplicateIndex(tools)
    return group(index.pairs(), {t.gateway_name: t.upstream for t in tools})


def duplicates_of(index: DuplicateIndex, upstream: str) -> list[Pair]:
    """Pairs joining one upstream's tools to the rest of the indexed catalog (incremental)."""
    return index.pairs(index.indices_of(upstream))
