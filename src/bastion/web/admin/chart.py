"""Bar charts as inline SVG, drawn on the server: no script, nothing for the CSP to allow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    bad_y: float
    bad_height: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: int
    first: str
    last: str
    total: int
    errors: int


def bars(points: list[dict[str, Any]], width: int = 640, height: int = 120) -> Chart:
    """One bar per time bucket (calls), its failed part drawn over it (errors)."""
    points = sorted(points, key=lambda p: str(p.get("time") or ""))
    peak = max((int(p.get("calls") or 0) for p in points), default=0)
    step = width / max(1, len(points))
    out = []
    for i, point in enumerate(points):
        calls, errors = int(point.get("calls") or 0), int(point.get("errors") or 0)
        h = (calls / peak) * (height - 4) if peak else 0
        e = (errors / peak) * (height - 4) if peak else 0
        label = f"{str(point.get('time') or '')[:16].replace('T', ' ')}: {calls} calls, {errors} errors"
        out.append(Bar(i * step + 1, height - h, max(1.0, step - 2), h, label, height - e, e))
    times = [str(p.get("time") or "")[:16].replace("T", " ") for p in points]
    return Chart(
        width, height, tuple(out), peak, times[0] if times else "", times[-1] if times else "",
        sum(int(p.get("calls") or 0) for p in points), sum(int(p.get("errors") or 0) for p in points),
    )
