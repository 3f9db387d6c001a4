"""Matching a resource URI against RFC 6570 URI templates (the simple `{var}` form MCP uses)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_VAR = re.compile(r"\{([^}]+)\}")


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
    """The first template (in the given order) that a URI matches."""

    def __init__(self, templates: Iterable[str]) -> None:
        self._compiled = [(t, _template_regex(t)) for t in templates]

    def match(self, uri: str) -> str | None:
        for template, pattern in self._compiled:
            if pattern.fullmatch(uri):
                return template
        return None
