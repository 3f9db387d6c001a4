"""Reading HTML forms into API bodies, and placing an API refusal next to the field it is about."""

from __future__ import annotations

import re
from typing import Any

_FIELD = re.compile(r"[A-Za-z_]+")


def lines(value: object) -> list[str]:
    """Non-empty lines of a textarea."""
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def pairs(value: object) -> dict[str, str]:
    """`KEY=VALUE` lines of a textarea (headers, env); raises ValueError naming a bad line."""
    out: dict[str, str] = {}
    for line in lines(value):
        key, sep, val = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got a line without '=' (line {len(out) + 1})")
        out[key.strip()] = val.strip()
    return out


def field_of(detail: str, fields: tuple[str, ...]) -> str | None:
    """Which form field an API error is about: the first field name the message mentions."""
    words = _FIELD.findall(detail.lower())
    for word in words:
        for field in fields:
            if word == field or word == field.rstrip("s"):
                return field
    return None


def errors_for(detail: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """`{"errors": {field: message}}` or `{"error": message}` for the template."""
    field = field_of(detail, fields)
    return {"errors": {field: detail}} if field is not None else {"error": detail}
