"""A side-by-side diff of two JSON definitions, as rows a template can show (no markup in here)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from bastion.core.hidden_text import reveal


@dataclass(frozen=True)
class Row:
    old: str
    new: str
    change: str
    """"same", "changed", "removed" (only on the old side), "added" (only on the new side), or
    "skipped": lines not shown, `old` saying which."""


def _lines(value: Any) -> list[str]:
    """The definition as indented JSON lines: readable in any script, but no character hidden (an
    upstream's invisible instructions would make a changed line look unchanged)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) if value is not None else ""
    return reveal(text).splitlines()


CONTEXT = 3
"""Unchanged lines shown around each changed stretch; a longer unchanged run is one "skipped" row."""
MOST_ROWS = 2_000
"""Rows one definition's diff shows at most (an upstream's definition may run to millions of lines)."""
_ALIGN_MOST = 40_000
"""The most line pairs (old lines times new lines, once the common start and end are set aside) the
diff aligns. Aligning costs about the cube of the lines: an upstream's definition of 3,000 alike
lines took two minutes, in the request's own event loop, so nothing else on the gateway moved."""


def _common_start(a: list[str], b: list[str]) -> int:
    n = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        n += 1
    return n


def side_by_side(old: Any, new: Any) -> list[Row]:
    a, b = _lines(old), _lines(new)
    start = _common_start(a, b)
    end = _common_start(a[start:][::-1], b[start:][::-1])
    middle_a, middle_b = a[start : len(a) - end], b[start : len(b) - end]
    rows = [Row(line, line, "same") for line in a[:start]]
    if len(middle_a) * len(middle_b) <= _ALIGN_MOST:
        rows += _aligned(middle_a, middle_b)
    else:  # too long to align: every line of the changed stretch, side by side, each marked changed
        rows += _paired(middle_a, middle_b)
    return _shown(rows + [Row(line, line, "same") for line in a[len(a) - end :]])


def _shown(rows: list[Row]) -> list[Row]:
    """The changed rows with their context, the rest of each unchanged run as one row; at most MOST_ROWS."""
    near = [False] * len(rows)
    for i, row in enumerate(rows):
        if row.change != "same":
            for k in range(max(0, i - CONTEXT), min(len(rows), i + CONTEXT + 1)):
                near[k] = True
    out: list[Row] = []
    run = 0
    for row, kept in zip(rows, near, strict=True):
        if kept:
            if run:
                out.append(Row(f"{run} unchanged lines", "", "skipped"))
                run = 0
            out.append(row)
        else:
            run += 1
    if run:
        out.append(Row(f"{run} unchanged lines", "", "skipped"))
    if len(out) > MOST_ROWS:
        rest = sum(1 for row in out[MOST_ROWS:] if row.change != "skipped")
        out = out[:MOST_ROWS] + [Row(f"{rest} more lines of the change, not shown here (the API's approval has them all)", "", "skipped")]
    return out


def _paired(left: list[str], right: list[str]) -> list[Row]:
    if not right:
        return [Row(line, "", "removed") for line in left]
    if not left:
        return [Row("", line, "added") for line in right]
    return [
        Row(left[k] if k < len(left) else "", right[k] if k < len(right) else "", "changed")
        for k in range(max(len(left), len(right)))
    ]


def _aligned(a: list[str], b: list[str]) -> list[Row]:
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [Row(a[i], b[j], "same") for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        else:  # replace, delete, insert
            rows += _paired(a[i1:i2], b[j1:j2])
    return rows
