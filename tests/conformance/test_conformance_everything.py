"""The conformance suite against the everything-style upstream (tests/upstreams/pushing_server.py: both
eras, asks push-style like the SDK's examples/servers/everything-server), directly and through Bastion
with that upstream behind it over Streamable HTTP, stdio (`isolation: per_session`) and SSE.

Through Bastion must equal direct, scenario for scenario: same pass/fail, same failed checks, same
content problems. Where the direct run itself does not pass cleanly, the scenario is named with its
reason in expected-failures.yml (`everything-style:`), so that list cannot go stale either.

The four runs of a suite are independent processes and run at once (each direct/HTTP/SSE run has an
upstream process of its own: the suite's trigger tools change server state). The database plays no
part, so this runs in the SQLite pass only.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from tests.conformance.auth_proxy import AuthProxy
from tests.conformance.suite import (
    CLI,
    NODE22,
    RUNNER,
    SUITES,
    TOTALS,
    Verdict,
    listed_scenarios,
    load_baseline,
    register_totals,
    verdicts,
)
from tests.harness import ROOT, TEST_DATABASE, TOKEN, serve, serve_asgi, settings_for

pytestmark = [
    pytest.mark.node,
    pytest.mark.anyio,
    pytest.mark.skipif(TEST_DATABASE == "postgres", reason="no database involved: runs in the SQLite pass only"),
]
PUSHING = ROOT / "tests" / "upstreams" / "pushing_server.py"
ROUTES = ("http", "stdio", "sse")
# Scenarios where Bastion is known to differ from direct (Bastion's fault, not the suite's), by
# (suite, scenario): the run through Bastion must still show the difference, so fixing it makes this
# test say so. Every upstream transport is affected alike.
# None today. server-sse-polling was one until the fast path's streamed answers became resumable
# (web/fast_stream.py): its checks for the priming event and the retry field now pass through Bastion as
# directly; its resume check stays INFO through Bastion because Bastion's own upstream client resumes
# the upstream's closed stream and the client's stream stays open to the reply (a drop-and-resume
# through Bastion is tests/e2e/test_stream_resume.py).
BASTION_GAPS: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _start(transport: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(PUSHING), "--transport", transport],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        pytest.fail(f"everything-style upstream ({transport}) did not start: {line!r}")
    return proc, int(line.split()[1])


@pytest.fixture(scope="module")
def upstream_ports() -> Iterator[dict[str, int]]:
    for path in (NODE22, RUNNER, *CLI.values()):
        if not path.exists():
            pytest.fail(f"{path} is missing: run scripts/install-node-tools first")
    procs = {"direct": _start("streamable-http"), "http": _start("streamable-http"), "sse": _start("sse")}
    try:
        yield {name: port for name, (_, port) in procs.items()}
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
async def urls(
    request: pytest.FixtureRequest, upstream_ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """The direct URL and, per upstream transport, the suite's URL through Bastion (via the auth proxy)."""
    register_totals(request)
    db = tmp_path_factory.mktemp("everything") / "bastion.db"
    bodies = {
        "http": {"transport": "streamable-http", "url": f"http://127.0.0.1:{upstream_ports['http']}/mcp"},
        "sse": {"transport": "sse", "url": f"http://127.0.0.1:{upstream_ports['sse']}/sse"},
        "stdio": {"transport": "stdio", "command": sys.executable, "args": [str(PUSHING)], "isolation": "per_session"},
    }
    async with serve(settings_for(f"sqlite+aiosqlite:///{db}")) as gateway:
        for route, body in bodies.items():
            name = f"everything-{route}"
            # Unpinned: the suite's dynamic-tool scenarios expect new tools to show at once.
            await gateway.register({"name": name, "pin": "off", **body})
            await gateway.create_server({"name": name, "upstreams": [name], "prefix": "never"})
        async with serve_asgi(AuthProxy(gateway.base_url, TOKEN)) as base:
            yield {
                "direct": f"http://127.0.0.1:{upstream_ports['direct']}/mcp",
                **{route: f"{base}/servers/everything-{route}/mcp" for route in ROUTES},
            }


def expected_failures(suite: str) -> set[str]:
    """The scenarios expected-failures.yml names for this suite against the everything-style upstream."""
    return {name.split("/", 1)[1] for name in load_baseline(section="everything-style") if name.startswith(f"{suite}/")}


def differences(direct: dict[str, Verdict], through: dict[str, Verdict]) -> list[str]:
    return [
        f"{scenario}: direct {direct[scenario].describe() if scenario in direct else 'no result'}"
        f" | through Bastion {through[scenario].describe() if scenario in through else 'no result'}"
        for scenario in sorted(set(direct) | set(through))
        if direct.get(scenario) != through.get(scenario)
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suite", SUITES)
async def test_through_bastion_equals_direct(urls: dict[str, str], suite: str, tmp_path: Path) -> None:
    results: dict[str, tuple[dict[str, Verdict], str]] = {}

    async def run(route: str) -> None:
        results[route] = await anyio.to_thread.run_sync(verdicts, suite, urls[route], tmp_path / route)

    # The suite is a child process that blocks while it runs; Bastion serves it from this loop.
    async with anyio.create_task_group() as tg:
        for route in ("direct", *ROUTES):
            tg.start_soon(run, route)

    for route, (judged, _) in results.items():
        label = "everything-style, direct" if route == "direct" else f"everything-style, through Bastion over {route}"
        failed = sum(not v.passed for v in judged.values())
        TOTALS.setdefault(label, {})[suite] = {
            "scenarios": len(judged),
            "passed": len(judged) - failed,
            "failed": failed,
            "checks": sum(v.successes for v in judged.values()),
            "warnings": sum(v.warnings for v in judged.values()),
        }
    direct, log = results["direct"]
    expected = listed_scenarios(suite)
    assert set(direct) == expected, f"direct: scenarios without results: {sorted(expected - set(direct))}\n{log[-3000:]}"
    not_clean = {s for s, v in direct.items() if not v.passed or v.problems}
    listed = expected_failures(suite)
    assert not_clean == listed, (
        f"{suite}: scenarios not clean directly {sorted(not_clean)} != expected-failures.yml {sorted(listed)}: "
        + "; ".join(f"{s}: {direct[s].describe()}" for s in sorted(not_clean ^ listed) if s in direct)
    )
    gaps = {scenario for s, scenario in BASTION_GAPS if s == suite}
    for route in ROUTES:
        through, log = results[route]
        for scenario in gaps:
            assert through.get(scenario) != direct[scenario], f"{scenario} now equals direct: remove it from BASTION_GAPS"
        diff = differences({s: v for s, v in direct.items() if s not in gaps}, {s: v for s, v in through.items() if s not in gaps})
        assert not diff, f"{suite} through Bastion over {route} differs from direct:\n" + "\n".join(diff) + log[-2000:]
