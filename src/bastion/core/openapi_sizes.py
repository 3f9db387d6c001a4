"""How many bytes a tool's definition takes as compact JSON (`json.dumps(value, separators=(",", ":"))`),
with the schemas tools share encoded once. Pure.

An inlined `$ref` is one object wherever it stands: Kubernetes' Pod is the body of its create, replace
and patch tools and the answer of a dozen more. Encoding each definition whole encoded it each time;
here the top levels of a definition are counted and each schema below them (an argument's, the
answer's) is encoded once, its length reused wherever the same object stands again. The sum is the
length of the whole encoding, exactly.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

SHARED_AT = 3
"""How deep in a definition the shared schemas stand: definition → inputSchema → properties → an
argument's schema; definition → outputSchema → anyOf → the answer's schema."""

_LITERALS = {None: 4, True: 4, False: 5}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class JsonSizes:
    """The compact JSON length of definitions. Holds each schema it has encoded (so no other object
    can take its id): the schemas must not change while this lives."""

    def __init__(self) -> None:
        self._encoded: dict[int, tuple[Any, int]] = {}

    def of(self, value: Any, depth: int = SHARED_AT) -> int:
        if isinstance(value, str):
            return len(encode_basestring_ascii(value))
        if not isinstance(value, dict | list):
            return _LITERALS.get(value, 0) if value is None or type(value) is bool else len(compact(value))
        if depth == 0:
            return self._encoded_length(value)
        if isinstance(value, list):
            return 1 + len(value) + sum(self.of(v, depth - 1) for v in value) if value else 2
        if not all(type(k) is str for k in value):  # keys as YAML reads them, which JSON turns into text
            return len(compact(value))
        if not value:
            return 2
        return 1 + 2 * len(value) + sum(len(encode_basestring_ascii(k)) + self.of(v, depth - 1) for k, v in value.items())

    def _encoded_length(self, value: dict[str, Any] | list[Any]) -> int:
        known = self._encoded.get(id(value))
        if known is None or known[0] is not value:
            known = self._encoded[id(value)] = (value, len(compact(value)))
        return known[1]
