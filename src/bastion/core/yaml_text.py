"""YAML read safely: `yaml.safe_load` builds each alias once and shares it, so a few hundred bytes of
nested aliases (a "billion laughs") load instantly and then expand to gigabytes wherever the value is
walked or serialised. A document whose aliases expand it far past its own size is refused."""

from __future__ import annotations

from typing import Any

import yaml

_BASE_NODES = 100_000
_NODES_PER_CHAR = 10
_CHARS_PER_NODE = 4
"""A string weighs a value per 4 characters: expansion of up to ~40 bytes per byte of document passes."""


class AliasBomb(ValueError):
    """The document's aliases expand it past what its size can justify."""


def load_yaml(text: str | bytes) -> Any:
    """`yaml.safe_load(text)`, raising AliasBomb when aliases expand it past 10 nodes per character
    (plus 100,000); yaml.YAMLError and RecursionError pass through as safe_load raises them."""
    data = yaml.safe_load(text)
    limit = _BASE_NODES + _NODES_PER_CHAR * len(text)
    if _expanded(data, {}, limit) > limit:
        raise AliasBomb(f"its aliases expand it past {limit} values")
    return data


def _expanded(value: Any, sizes: dict[int, int], limit: int) -> int:
    """How many values `value` holds once every shared (aliased) part is counted each time it is used
    (a string by its length)."""
    if isinstance(value, str | bytes):
        return 1 + len(value) // _CHARS_PER_NODE  # one long string aliased a thousand times is a bomb too
    if not isinstance(value, dict | list):
        return 1
    known = sizes.get(id(value))
    if known is not None:
        return known
    total = 1
    for child in value.values() if isinstance(value, dict) else value:
        total += _expanded(child, sizes, limit)
        if total > limit:
            break
    sizes[id(value)] = total
    return total
