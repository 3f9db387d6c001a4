"""JSON encoders made once, for text encoded on every call (audit hashes, log lines).

`json.JSONEncoder(...).encode` builds a new C encoder on each call, about 1.7 us, more than
encoding a small object takes. These keep one. They do not check for cycles (a value is a tree:
parsed JSON, or fields a caller built); a cyclic value fails with RecursionError, not ValueError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any


def json_encoder(
    *,
    sort_keys: bool = False,
    separators: tuple[str, str] = (", ", ": "),
    ensure_ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> Callable[[Any], str]:
    """What `json.JSONEncoder(**options, check_circular=False).encode` returns, encoding with
    one C encoder (the plain one where the C accelerator is missing)."""
    plain = json.JSONEncoder(
        sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii, default=default, check_circular=False
    )
    if c_make_encoder is None:
        return plain.encode
    item_separator, key_separator = separators
    string = encode_basestring_ascii if ensure_ascii else encode_basestring
    encode = c_make_encoder(None, plain.default, string, None, key_separator, item_separator, sort_keys, False, True)

    def encoded(value: Any) -> str:
        if isinstance(value, str):
            return string(value)
        return "".join(encode(value, 0))

    return encoded
