"""The per-request figures, kept lean: plain dicts on the hot path, formatted directly at scrape.

prometheus_client's instruments cost several microseconds per update (label validation, locks)
and its exposition tens of microseconds per sample, which a catalog of 10,000 called tools turns
into a scrape of seconds. Here an update is a dict increment and a bisect, and each request
counter series keeps its formatted label text, so a scrape is one f-string per series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REQUESTS = "bastion_requests"
_REQUEST_LABELS = ("server", "method", "upstream", "item", "outcome")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class RequestCounts:
    """`bastion_requests_total{server, method, upstream, item, outcome}`."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], int] = {}
        self._text: dict[tuple[str, ...], str] = {}

    def inc(self, key: tuple[str, str, str, str, str]) -> None:
        counts = self._counts
        if key in counts:
            counts[key] += 1
        else:
            labels = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(_REQUEST_LABELS, key, strict=True))
            self._text[key] = f"{REQUESTS}_total{{{labels}}} "
            counts[key] = 1

    def value(self, **labels: str) -> int:
        """The sum over series matching `labels` (for tests and the CLI)."""
        index = {n: i for i, n in enumerate(_REQUEST_LABELS)}
        return sum(v for k, v in list(self._counts.items()) if all(k[index[n]] == x for n, x in labels.items()))

    def text(self, openmetrics: bool) -> str:
        name = REQUESTS if openmetrics else f"{REQUESTS}_total"
        lines = [
            f"# HELP {name} MCP requests by virtual server, method, upstream, item and outcome\n",
            f"# TYPE {name} counter\n",
        ]
        texts = self._text
        lines.extend(f"{texts[k]}{float(v)!r}\n" for k, v in list(self._counts.items()))
        return "".join(lines)


class Histograms(Collector):
    """Histograms updated with a bisect and list increments; exposed through prometheus_client."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.bounds = list(buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(self.bounds) + 3)  # buckets, +Inf, sum, count
        series[bisect_left(self.bounds, value)] += 1
        series[-2] += value
        series[-1] += 1

    def count(self, key: tuple[str, ...]) -> int:
        series = self._series.get(key)
        return int(series[-1]) if series is not None else 0

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        edges = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        for key, series in list(self._series.items()):
            running, buckets = 0.0, []
            for edge, count in zip(edges, series[:-2], strict=True):
                running += count
                buckets.append((edge, running))
            family.add_metric(list(key), buckets, series[-2])
        yield family
