"""The depth of JSON text, read without parsing it, against a plain character-by-character reading:
strings (with escaped quotes and backslashes, and brackets inside them), truncated bodies, both limits."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from bastion.core.json_nesting import MAX_DEPTH, UPSTREAM_MAX_DEPTH, body_too_deep


def depth_by_hand(text: str) -> int:
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


LEAVES = [1, None, "s[", 'q"]{', "\\", 'x\\"]', '\\\\"[[', "[[[[", "]]]]", "é{"]


def document(rng: random.Random, levels: int) -> Any:
    if levels <= 0 or rng.random() < 0.45:
        return rng.choice(LEAVES)
    if rng.random() < 0.5:
        return [document(rng, levels - 1) for _ in range(rng.randint(0, 2))]
    return {f"k{i}[\\": document(rng, levels - 1) for i in range(rng.randint(0, 2))}


@pytest.mark.parametrize("seed", range(4))
def test_the_depth_read_from_text_is_the_depth_a_reader_counts(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        value = document(rng, rng.randint(1, 40))
        for _ in range(rng.randint(0, 140)):
            value = [value] if rng.random() < 0.5 else {"a": value}
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.2:
            text = text[: rng.randint(0, len(text))]  # a body read in part
        deepest = depth_by_hand(text)
        for limit in (MAX_DEPTH, UPSTREAM_MAX_DEPTH):
            assert body_too_deep(text, limit) == (deepest > limit), (limit, deepest, text[:200])
            assert body_too_deep(text.encode(), limit) == (deepest > limit)
