"""JSON from outside, read safely: how deeply it may nest, and no lone surrogates.

The depth limit is far beyond any real configuration or tool arguments, far below Python's recursion
limit, and below what upstream servers' parsers survive (a deeply nested argument otherwise crashes
a shared upstream process for everyone). It is measured on the bytes, before anything parses them:
`json.loads` recurses in C once per level and relies on the interpreter's recursion limit to stop,
and that limit is process-wide (a library or a test runner that raises it would let a deep body
overflow a thread's C stack).

JSON's syntax allows the escape of a lone UTF-16 surrogate (`"\\ud800"`) and `json.loads` keeps it in
a str that UTF-8 cannot encode, so it crashed whatever stored or sent it on (a 500 from the
database driver, a shared upstream connection dropped). Such a document is refused as invalid JSON,
as the MCP SDK's parser refuses it. `json.loads` also decodes bytes with "surrogatepass" (UTF-8
bytes ED A0 80 became U+D800); here bytes are decoded strictly."""

from __future__ import annotations

import json
import re
from typing import Any

from bastion.core.json_nesting import MAX_DEPTH, body_too_deep
from bastion.core.surrogates import ESCAPE, SURROGATE, shown, surrogate_in

__all__ = ["MAX_DEPTH", "LoneSurrogate", "TooDeep", "body_too_deep", "loads"]


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"the JSON nests deeper than {MAX_DEPTH} levels")


class LoneSurrogate(json.JSONDecodeError):
    """JSON whose text holds a surrogate, escaped or encoded: invalid JSON to every caller."""


def loads(body: bytes | bytearray | str) -> Any:
    """`json.loads` for text from outside: TooDeep (a ValueError) before parsing anything nested
    past MAX_DEPTH, so no caller depends on a RecursionError to stop it; LoneSurrogate (a
    JSONDecodeError) for a surrogate in it. Cheap unless the text holds a surrogate's escape."""
    if body_too_deep(body):
        raise TooDeep()
    text = _text(body)
    value = json.loads(text)
    if "\\" in text and ESCAPE.search(text):  # a backslash is found at memchr speed; "\\u" is not
        found = surrogate_in(value)  # decisive: a valid pair was joined, an escaped backslash is no escape
        if found is not None:
            raise LoneSurrogate(f"a lone surrogate ({shown(found)}) is not text", text, _escape_at(text, found))
    return value


def _text(body: bytes | bytearray | str) -> str:
    """The JSON text of `body`: bytes decoded as `json.loads` decodes them, but strictly."""
    if isinstance(body, str):
        found = None if body.isascii() else SURROGATE.search(body)
        if found is not None:
            raise LoneSurrogate(f"a surrogate ({shown(found.group())}) is not text", body, found.start())
        return body
    encoding = json.detect_encoding(body)
    try:
        return body.decode(encoding)
    except UnicodeDecodeError:
        text = body.decode(encoding, "surrogatepass")  # not text at all: the UnicodeDecodeError json.loads raised
        found = SURROGATE.search(text)
        where = found.start() if found else 0
        raise LoneSurrogate(f"an encoded surrogate ({shown(text[where])}) is not text", text, where) from None


def _escape_at(text: str, found: str) -> int:
    """Where an escape of the surrogate `found` is in `text` (for the error's position; one search)."""
    at = re.search(re.escape(shown(found)), text, re.IGNORECASE)
    return at.start() if at else 0
