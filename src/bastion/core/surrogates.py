"""Lone UTF-16 surrogates: JSON and YAML escapes (`"\\ud800"`) may name one, Python keeps it in a
str, and UTF-8 (so the database, an upstream's pipe, protobuf) cannot encode it. Text from outside
that holds one is refused where it is parsed, as the MCP SDK's own JSON parser refuses it."""

from __future__ import annotations

import json
import re
from typing import Any

from bastion.core.errors import UpstreamProtocolError

SURROGATE = re.compile("[\ud800-\udfff]")
ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""Where a surrogate's escape may start in JSON text: one of a pair, a lone one, or text after an escaped backslash."""
_BYTES_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ENCODED = re.compile(rb"\xed[\xa0-\xbf]")


def shown(char: str) -> str:
    """A surrogate as its JSON escape (`\\ud800`): an error message must not carry the surrogate itself."""
    return f"\\u{ord(char):04x}"


def replaced(text: str) -> str:
    """`text` with each surrogate as U+FFFD: text UTF-8 (a database, protobuf) can carry, for what is
    kept or passed on rather than refused (an error message, a span's name)."""
    return text if text.isascii() else SURROGATE.sub("\ufffd", text)


def surrogate_in(value: Any) -> str | None:
    """The first surrogate in any string or dict key inside `value` (parsed JSON or YAML), or None."""
    if isinstance(value, str):
        found = None if value.isascii() else SURROGATE.search(value)
        return found.group() if found else None
    if isinstance(value, dict):
        for key, item in value.items():
            found_in = surrogate_in(key) or surrogate_in(item)
            if found_in:
                return found_in
    elif isinstance(value, list | tuple | set | frozenset):  # YAML's !!set is a set, !!omap/!!pairs tuples
        for item in value:
            found_in = surrogate_in(item)
            if found_in:
                return found_in
    return None


class NotUnicode(ValueError):
    """JSON from another party whose text holds a lone surrogate, refused where it is parsed: a
    ValueError, so a site that refuses malformed JSON as a ValueError needs no branch of its own. It
    carries the surrogate (`char`), for a site that names the party in an error of its own, and the
    parsed value (`value`), for one that looks at the answer's shape before its text."""

    def __init__(self, char: str, value: Any, what: str, verb: str) -> None:
        super().__init__(not_unicode_detail(what, char, verb))
        self.char = char
        self.value = value


class UnfitNumber(ValueError):
    """JSON from another party spelling NaN, Infinity or -Infinity: Python's parser reads them, no
    JSON text can carry them on (a strict client fails on Bastion's answer, an encoder that refuses
    them raised a 500). Raised by `strict_loads(..., finite=True)` as the parser meets one: no pass
    over the value, and no cost unless the text spells one. `constant` is the one met."""

    def __init__(self, constant: str) -> None:
        super().__init__(f"{UNFIT} ({constant})")
        self.constant = constant


UNFIT = "a number JSON cannot carry"
"""Marks the text of that refusal, which may reach the upstream connection inside an SDK error."""


def unfit_detail(what: str, constant: str) -> str:
    """Why a message from `what` is refused: it holds `constant` (NaN, Infinity or -Infinity)."""
    return f"{what} sent {UNFIT} ({constant})"


def _unfit(constant: str) -> Any:
    raise UnfitNumber(constant)


_FINITE = json.JSONDecoder(parse_constant=_unfit)


def finite_loads(raw: bytes | bytearray | str) -> Any:
    """`json.loads(raw)`, but UnfitNumber for NaN, Infinity or -Infinity (bytes decoded as json.loads decodes them)."""
    text = raw if isinstance(raw, str) else bytes(raw).decode(json.detect_encoding(raw), "surrogatepass")
    return _FINITE.decode(text)


class TooDeep(json.JSONDecodeError):
    """JSON nested past the interpreter's recursion limit (a JSONDecodeError, as other unreadable JSON)."""


def strict_loads(raw: bytes | bytearray | str, what: str = "the JSON", verb: str = "holds", *, finite: bool = False) -> Any:
    """`json.loads(raw)`, and NotUnicode (a ValueError, worded `what` `verb` ...) when the text holds a
    lone surrogate, escaped (`"\\ud800"`) or, in bytes, encoded (json.loads decodes bytes with
    surrogatepass, so ED A0 80 is U+D800). A plain answer costs a byte search or two: an escape needs
    a backslash, and an encoded surrogate a byte ED; only then is the parsed value walked. Bytes in
    UTF-16 or UTF-32 (json.loads reads them too, and neither search sees an escape in them) always
    hold a byte 00, which UTF-8 JSON never holds, so they are always walked. JSON nested past the
    recursion limit raises JSONDecodeError, as other JSON that cannot be read does. With `finite`,
    NaN, Infinity or -Infinity raises UnfitNumber (a ValueError) as the parser meets it."""
    try:
        value = finite_loads(raw) if finite else json.loads(raw)
    except RecursionError:  # nested past the interpreter's limit: what callers expect of bad JSON
        raise TooDeep(f"{what} is nested too deeply to read", "", 0) from None
    if isinstance(raw, str):  # plain `in`s and `and`s: this is on the path of every upstream call
        if not (("\\" in raw and ESCAPE.search(raw)) or (not raw.isascii() and SURROGATE.search(raw))):
            return value
    elif not (
        (b"\\" in raw and _BYTES_ESCAPE.search(raw)) or (b"\xed" in raw and _ENCODED.search(raw)) or b"\x00" in raw
    ):
        return value
    found = surrogate_in(value)  # decisive: a pair is one character, "\\\\ud800" no escape
    if found is not None:
        raise NotUnicode(found, value, what, verb)
    return value


def not_unicode(what: str, char: str, verb: str = "answered with") -> UpstreamProtocolError:
    """The error for an upstream answer holding a lone surrogate: a protocol error (502, a JSON-RPC
    error to the caller), as the MCP SDK's parser makes of one, never text Bastion passes on."""
    return UpstreamProtocolError(not_unicode_detail(what, char, verb))


def not_unicode_detail(what: str, char: str, verb: str = "answered with") -> str:
    """Why text from `what` holding a lone surrogate is refused, for the error a party's malformed
    answer already raises where that is not an upstream protocol error (a token endpoint, a file)."""
    return f"{what} {verb} text that is not valid Unicode (a lone surrogate {shown(char)})"


def pairs_joined(value: Any) -> Any:
    """`value` (parsed YAML) with each surrogate pair in its strings and keys joined into the one
    character it encodes: PyYAML reads `"\\ud83d\\ude00"` as two surrogates where JSON reads 😀."""
    if isinstance(value, str):
        return _joined(value) if not value.isascii() and SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {pairs_joined(key): pairs_joined(item) for key, item in value.items()}
    if isinstance(value, list):
        return [pairs_joined(item) for item in value]
    if isinstance(value, tuple | set | frozenset):
        return type(value)(pairs_joined(item) for item in value)
    return value


def yaml_surrogate(raw: bytes | str, value: Any) -> tuple[Any, str | None]:
    """`value` (parsed YAML from `raw`) with its surrogate pairs joined, and the first lone surrogate
    left in it (None). Only an escape can name one (PyYAML refuses a surrogate character and bytes
    that are not UTF-8), so text without a backslash is neither walked nor copied."""
    if ("\\" not in raw) if isinstance(raw, str) else (b"\\" not in raw):
        return value, None
    joined = pairs_joined(value)
    return joined, surrogate_in(joined)


def _joined(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
