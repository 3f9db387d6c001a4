"""Characters a browser draws as nothing (or that reorder what is drawn), written out instead.

An upstream writes its tools' descriptions, and a model reads every character of them. Unicode tag
characters (U+E0000 to U+E007F) spell text that no browser draws, bidi controls make a line read
in another order, zero-width characters and variation selectors hide in plain sight. Where a person
reads what a stranger wrote to decide about it (the approvals diff and a tool's page in the admin UI,
an OAuth client's self-chosen name on the consent page), each such character is shown as its JSON
escape (`\\u202e`, a surrogate pair above U+FFFF), so a change that looks like nothing does not look
like nothing, and "Good \\u202eknaB" does not read "Good Bank". Where Bastion itself asks for a name
(a user's email, an API token's name), such characters are refused instead, and a one-line name
refuses the line breaks and tabs a diff keeps too. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata

from bastion.core.errors import BadRequest

_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})
"""Controls, format characters (bidi controls, zero-width, tags, soft hyphen), private use,
unassigned, lone surrogates, line and paragraph separators."""
_KEPT = frozenset("\n\r\t")
"""Controls that only lay text out (JSON already escapes them in the diff)."""
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")
"""Letters and marks that are drawn blank: the Hangul fillers, the Braille blank, the combining
grapheme joiner."""


_ASCII_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_CONTROLS = re.compile("[\x00-\x1f\x7f]")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Unicode category Cc, line breaks and tabs included."""


def _hidden(char: str) -> bool:
    if char in _KEPT:
        return False
    point = ord(char)
    if 0xFE00 <= point <= 0xFE0F or 0xE0100 <= point <= 0xE01EF or 0x180B <= point <= 0x180F:
        return True  # variation selectors: invisible, and enough of them to spell bytes
    return char in _BLANK_LETTERS or unicodedata.category(char) in _HIDDEN_CATEGORIES


def _escape(char: str) -> str:
    point = ord(char)
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    point -= 0x10000
    return f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}"


def _plain(text: str) -> bool:
    """Whether `text` surely hides nothing (the quick answer for most text)."""
    return text.isascii() and not _ASCII_HIDDEN.search(text)


def reveal(text: str) -> str:
    """`text` with every hidden character written as its JSON escape; visible text is unchanged."""
    if _plain(text):
        return text
    return "".join(_escape(c) if _hidden(c) else c for c in text)


def reveal_line(text: str) -> str:
    """`text` as one line: every hidden character written out as `reveal` does, and line breaks and
    tabs too. For what a record keeps of a stranger's input (a request's path, a sign-in's email):
    a raw CR, LF or ESC there would start a forged line, or repaint a terminal, where the record is
    read as text."""
    if text.isascii() and not _ASCII_CONTROLS.search(text):
        return text
    return "".join(_escape(c) if c in _KEPT or _hidden(c) else c for c in text)


def check_visible(text: str, field: str) -> str:
    """`text`, or BadRequest naming `field` and the first character in it that a browser hides."""
    if _plain(text):
        return text
    for place, char in enumerate(text, 1):
        if _hidden(char):
            raise BadRequest(
                f"'{field}' must not contain characters a browser draws as nothing or that reorder text "
                f"({_escape(char)} is character {place})"
            )
    return text


def check_one_line(text: str, field: str) -> str:
    """`text`, or BadRequest naming `field` for a control character, a line break or tab included (a
    diff keeps those; a name holding one is drawn as several lines in a log, a table or a page), or
    for what check_visible refuses."""
    found = _CONTROLS.search(text)
    if found is not None:
        raise BadRequest(
            f"'{field}' must be one line without control characters "
            f"({_escape(found.group())} is character {found.start() + 1})"
        )
    return check_visible(text, field)
