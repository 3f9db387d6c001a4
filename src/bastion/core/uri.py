"""Resource URIs: one normal form for every comparison, and matching against RFC 6570 URI templates
(the simple `{var}` form MCP uses).

Policy, routing, template matching and subscriptions all compare `normalize_uri` forms, and
Bastion forwards that form to the upstream, so the URI a decision was made on is the URI the
upstream reads (`%73ecret` and `secret`, `FIXTURE://` and `fixture://` are one resource).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from urllib.parse import unquote

_VAR = re.compile(r"\{([^}]+)\}")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})?")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def _percent(match: re.Match[str]) -> str:
    if match.group(1) is None:
        return "%25"  # a stray `%` is a literal one: escaped, so no later decoding can make a new escape
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path: `/a/./b/../c` is `/a/c`."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    result = "/" + "/".join(out)
    if segments[-1] in (".", "..") and not result.endswith("/"):
        result += "/"
    return result


def normalize_uri(uri: str) -> str:
    """RFC 3986 6.2.2 syntax-based normalisation: percent-encoded unreserved characters decoded, the
    other escapes in upper case, scheme and host in lower case, dot segments removed from the path.
    Reserved characters keep their escapes (`%2F` is not `/`); a stray `%` becomes `%25`. Idempotent,
    so no second decoding (by the upstream) reveals another URI; templates keep `{...}`."""
    text = _PERCENT.sub(_percent, uri)
    match = _SCHEME.match(text)
    if match is None:
        return text
    rest = text[match.end() :]
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    hier, tail = rest[:cut], rest[cut:]
    if hier.startswith("//"):
        end = hier.find("/", 2)
        end = len(hier) if end < 0 else end
        userinfo, at, host = hier[2:end].rpartition("@")
        path = hier[end:]
        hier = "//" + userinfo + at + host.lower() + (_remove_dot_segments(path) if path else "")
    elif hier.startswith("/"):
        hier = _remove_dot_segments(hier)
    return f"{match.group(1).lower()}:{hier}{tail}"


def uri_readings(uri: str) -> tuple[str, ...]:
    """The normal form of `uri`, and the form an upstream that decodes every escape (as many do,
    `%2F` included, even twice) would read: a policy must allow both, or the URI is denied."""
    normal = normalize_uri(uri)
    decoded = normal
    for _ in range(4):
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
    decoded = normalize_uri(decoded)
    return (normal,) if decoded == normal else (normal, decoded)


def _template_regex(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    for m in _VAR.finditer(template):
        parts.append(re.escape(template[pos : m.start()]))
        expr = m.group(1)
        # `{+var}` and `{#var}` may span slashes; plain `{var}` stops at one.
        parts.append(".+" if expr[:1] in "+#" else "[^/?#]+")
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("".join(parts))


class UriMatcher:
    """The first template (in the given order) that a URI matches. Give both in normal form."""

    def __init__(self, templates: Iterable[str]) -> None:
        self._compiled = [(t, _template_regex(t)) for t in templates]

    def match(self, uri: str) -> str | None:
        for template, pattern in self._compiled:
            if pattern.fullmatch(uri):
                return template
        return None
