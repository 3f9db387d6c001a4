"""Tool search (BM25) on a virtual server of 10,000 generated tools: index build once, then query
latency p50/p99 over a set of realistic queries. Prints figures; never fails on a number.

    .venv/bin/python bench/tool_search.py [--upstreams 10] [--tools 1000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_gen import NOUNS, VERBS, catalog

from bastion.core.compose import compose
from bastion.core.models import Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.policy import Policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstreams", type=int, default=10)
    parser.add_argument("--tools", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    items = catalog(args.upstreams, args.tools, duplicate_share=0)
    upstreams = {n: Upstream(spec=UpstreamSpec(name=n, transport="stdio", command="x")) for n in {i.upstream for i in items}}
    spec = VirtualServerSpec(name="big", upstreams=tuple(sorted(upstreams)), discovery="search")
    view, _ = compose(spec, items, upstreams, strict=True)
    start = time.perf_counter()
    index = view.tool_index()
    built = time.perf_counter() - start
    rng = random.Random(3)
    queries = [f"{rng.choice(VERBS)} {rng.choice(NOUNS).replace('_', ' ')} {rng.choice(['', 'by id', 'in github', 'status'])}" for _ in range(args.queries)]
    policy = Policy.model_validate({"default": "allow", "rules": [{"effect": "deny", "tools": ["up0__*"]}]})

    def run(allowed: object) -> list[float]:
        out = []
        for q in queries:
            t = time.process_time()
            index.search(q, 10, allowed)  # type: ignore[arg-type]
            out.append(time.process_time() - t)
        return sorted(out)

    plain = run(None)
    from bastion.core.policy import Caller

    caller = Caller(user="u", teams=frozenset(), role="developer", token=None)
    with_policy = run(lambda name: policy.allows(caller, "tool", name))
    print(f"{len(view.tools)} tools; index built in {built * 1000:.0f} ms")
    for label, times in (("no policy", plain), ("policy hides 1/10", with_policy)):
        p50, p99 = statistics.median(times), times[int(len(times) * 0.99)]
        print(f"search top 10 ({label}), CPU time: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms over {len(times)} queries")


if __name__ == "__main__":
    main()
