"""A side-by-side diff of two JSON definitions, as rows a template can show (no markup in here)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from bastion.web.admin.hidden import reveal


@dataclass(frozen=True)
class Row:
    old: str
    new: str
    change: str
    """"same", "changed", "removed" (only on the old side) or "added" (only on the new side)."""


def _lines(value: Any) -> list[str]:
    """The definition as indented JSON lines: readable in any script, but no character hidden (an
    upstream's invisible instructions would make a changed line look unchanged)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) if value is not None else ""
    return reveal(text).splitlines()


def side_by_side(old: Any, new: Any) -> list[Row]:
    a, b = _lines(old), _lines(new)
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [Row(a[i], b[j], "same") for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        elif tag == "replace":
            left, right = a[i1:i2], b[j1:j2]
            for k in range(max(len(left), len(right))):
                rows.append(Row(left[k] if k < len(left) else "", right[k] if k < len(right) else "", "changed"))
        elif tag == "delete":
            rows += [Row(a[i], "", "removed") for i in range(i1, i2)]
        else:
            rows += [Row("", b[j], "added") for j in range(j1, j2)]
    return rows
