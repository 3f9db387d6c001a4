"""Tool search for progressive discovery: BM25 over tool names, descriptions and argument names.

A virtual server with `discovery: "search"` lists three meta-tools instead of its catalog; the index is
built once per composed view and queried per request. Pure: no I/O.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bastion.core.duplicates import STOP_WORDS, fold, words

SEARCH_TOOL = "search_tools"
DESCRIBE_TOOL = "describe_tool"
CALL_TOOL = "call_tool"
META_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": SEARCH_TOOL,
        "title": "Search tools",
        "description": "Find tools of this server by what they do. Returns the best matches, with their input schemas.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What you want to do, in words"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
            },
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": DESCRIBE_TOOL,
        "title": "Describe a tool",
        "description": "The full definition (description and input schema) of one tool found by search_tools.",
        "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": CALL_TOOL,
        "title": "Call a tool",
        "description": "Call a tool found by search_tools by its name, with its arguments.",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}},
            "required": ["name"],
        },
    },
)
META_NAMES = frozenset(t["name"] for t in META_TOOLS)
_K1, _B = 1.2, 0.75
# Name words count more than description words: a query for "create issue" means tools named so.
_FIELD_WEIGHT = {"name": 3, "arg": 2, "desc": 1}


def _terms(definition: Mapping[str, Any]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for word in _words(str(definition.get("name", ""))):
        counts[word] += _FIELD_WEIGHT["name"]
    for word in _words(str(definition.get("title") or "")):
        counts[word] += _FIELD_WEIGHT["name"]
    for word in _words(str(definition.get("description") or "")):
        counts[word] += _FIELD_WEIGHT["desc"]
    schema = definition.get("inputSchema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    for arg in props if isinstance(props, dict) else ():
        for word in _words(str(arg)):
            counts[word] += _FIELD_WEIGHT["arg"]
    return counts


def _words(text: str) -> list[str]:
    return [fold(w) for w in words(text) if w not in STOP_WORDS]


class ToolIndex:
    """BM25 over the listed tool definitions of a view, in list order."""

    def __init__(self, names: Iterable[str], definitions: Iterable[Mapping[str, Any]]) -> None:
        self.names = list(names)
        self.definitions = list(definitions)
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        lengths: list[int] = []
        for i, definition in enumerate(self.definitions):
            terms = _terms(definition)
            lengths.append(sum(terms.values()))
            for term, tf in terms.items():
                postings[term].append((i, tf))
        n = max(len(self.names), 1)
        average = (sum(lengths) / n) or 1.0
        norm = [_K1 * (1 - _B + _B * length / average) for length in lengths]
        # Each term's BM25 contribution to each tool's score does not depend on the query: computed
        # here, once, a search only adds them up.
        self.scored: dict[str, list[tuple[int, float]]] = {}
        for term, found in postings.items():
            idf = math.log(1 + (n - len(found) + 0.5) / (len(found) + 0.5))
            self.scored[term] = [(i, idf * tf * (_K1 + 1) / (tf + norm[i])) for i, tf in found]
        self._common = max(n // 2, 50)

    def search(self, query: str, limit: int = 10, allowed: Callable[[str], bool] | None = None) -> list[tuple[str, float]]:
        """The best `limit` tools for `query` that `allowed` lets the caller see, with their scores."""
        scores: dict[int, float] = defaultdict(float)
        for term in set(_words(query)):
            found = self.scored.get(term)
            if found is None or len(found) > self._common:
                continue  # unknown, or on most tools: it would cost much and rank little
            for i, weight in found:
                scores[i] += weight
        best: list[tuple[str, float]] = []
        ranked = heapq.nlargest(limit * 4 if allowed else limit, scores.items(), key=lambda s: (s[1], -s[0]))
        for i, score in ranked:
            name = self.names[i]
            if allowed is None or allowed(name):
                best.append((name, round(score, 4)))
                if len(best) == limit:
                    return best
        if allowed is not None and len(best) < limit and len(ranked) < len(scores):
            # The policy hid many of the best: rank the rest too.
            rest = sorted(scores.items(), key=lambda s: (-s[1], s[0]))[len(ranked):]
            for i, score in rest:
                if allowed(self.names[i]):
                    best.append((self.names[i], round(score, 4)))
                    if len(best) == limit:
                        break
        return best
