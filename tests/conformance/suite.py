"""Running the MCP conformance suite (scripts/conformance) and judging its results.

Three runs: 0.1.16 `--suite all` (legacy), and 0.2.0-alpha.12 `--suite all` at `--spec-version
2025-11-25` and at `2026-07-28`. Each scenario the suite lists for the run must have written its
checks.json, and must pass: no FAILURE check and at least one SUCCESS (scenarios in
tests/conformance/expected-failures.yml, which may only name Tasks-extension scenarios, excepted).
WARNING checks must be known ones. A green line is not trusted on its own: the tool-call
scenarios' recorded tool results are read too, because tools-call-error passes on any
`isError: true` result, including the "Unknown tool" error of a server that lacks the tool.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "tests" / "conformance" / "upstream.py"
BASELINE = ROOT / "tests" / "conformance" / "expected-failures.yml"
RUNNER = ROOT / "scripts" / "conformance"
NODE22 = ROOT / "scripts" / "node22"
MODULES = ROOT / "tools" / "node_modules"
CLI = {
    "legacy": MODULES / "conformance-legacy" / "dist" / "index.js",
    "next-2025": MODULES / "conformance-next" / "dist" / "index.js",
    "next-2026": MODULES / "conformance-next" / "dist" / "index.js",
}
SPEC_VERSION = {"legacy": None, "next-2025": "2025-11-25", "next-2026": "2026-07-28"}
SUITES = list(CLI)

ERROR_TEXT = "This tool intentionally returns an error for testing"
# What the scenarios' own clients answer, so the tool results must carry it back.
EXPECTED_TEXT = {
    "tools-call-simple-text": "This is a simple text response for testing.",
    "tools-call-sampling": "LLM response: This is a test response from the client",
    "tools-call-elicitation": '"username":"testuser"',
    "sep-2322-elicitation-complete": "Hello, Alice!",
    "sep-2322-request-state-complete": "state-ok",
}
# WARNING checks that are the suite's doing, by (suite, scenario, check id).
KNOWN_WARNINGS = {
    # 0.1.16 posts the test_reconnection call with a hard-coded `mcp-protocol-version:
    # 2025-03-26` header on a 2025-11-25 session, so the SDK (rightly) sends no SEP-1699
    # priming event or retry field to what claims to be a 2025-03-26 client. 0.2 sends
    # the negotiated version and gets both (next-2025 server-sse-polling passes clean).
    ("legacy", "server-sse-polling", "server-sse-priming-event"),
    ("legacy", "server-sse-polling", "server-sse-retry-field"),
}
TIMESTAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")

TOTALS: dict[str, dict[str, dict[str, int]]] = {}
"""label (direct, through Bastion) -> suite -> counts, for the terminal summary."""


def load_baseline(path: Path = BASELINE, section: str = "server") -> set[str]:
    """The scenario names one section of the expected-failures file lists (a tiny YAML subset: no PyYAML
    here): `server:` for Bastion's own fixture, `everything-style:` for the everything-style upstream."""
    names: set[str] = set()
    key_section = None
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith((" ", "-")):
            key, _, rest = line.partition(":")
            key_section = key.strip()
            assert rest.strip() in ("", "[]"), f"{path}: unsupported value {rest.strip()!r} for {key_section!r}"
        elif line.strip().startswith("- ") and key_section == section:
            names.add(line.strip()[2:].strip())
    if section != "server":
        return names
    non_tasks = sorted(n for n in names if not n.startswith("tasks-"))
    assert not non_tasks, f"{path} may only list Tasks-extension scenarios (Bastion has no Tasks): {non_tasks}"
    return names


def listed_scenarios(suite: str) -> set[str]:
    """The server scenarios `scripts/conformance SUITE` runs, from the suite's own `list`."""
    args = ["list", "--server"]
    if SPEC_VERSION[suite]:
        args += ["--spec-version", str(SPEC_VERSION[suite])]
    out = subprocess.run([str(NODE22), str(CLI[suite]), *args], capture_output=True, text=True, check=True, timeout=60)
    return set(re.findall(r"^\s+- (\S+)", out.stdout, re.MULTILINE))


def read_results(out: Path) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for checks in sorted(out.glob("server-*/checks.json")):
        scenario = TIMESTAMP.sub("", checks.parent.name.removeprefix("server-"))
        assert scenario not in results, f"{scenario} ran twice"
        results[scenario] = json.loads(checks.read_text())
    return results


def tool_results(value: Any) -> Iterator[dict[str, Any]]:
    """Every CallToolResult-shaped object recorded anywhere in a check's details."""
    if isinstance(value, dict):
        if isinstance(value.get("content"), list) and ("isError" in value or "resultType" in value):
            yield value
        for item in value.values():
            yield from tool_results(item)
    elif isinstance(value, list):
        for item in value:
            yield from tool_results(item)


def texts(result: dict[str, Any]) -> list[str]:
    return [c.get("text", "") for c in result["content"] if isinstance(c, dict) and c.get("type") == "text"]


def content_problems(scenario: str, checks: list[dict[str, Any]]) -> list[str]:
    """What a check's status does not show: error or unknown-tool results, wrong texts."""
    problems = []
    for check in checks:
        details = check.get("details")
        for result in tool_results(details):
            joined = " | ".join(texts(result))
            if re.search(r"unknown tool|tool .*not found", joined, re.IGNORECASE):
                problems.append(f"{scenario}/{check['id']}: tool not found: {joined!r}")
            elif result.get("isError") and check["id"] != "tools-call-error":
                problems.append(f"{scenario}/{check['id']}: tool returned an error: {joined!r}")
        if check["id"] == "tools-call-error":
            result = (details or {}).get("result") or {}
            if result.get("isError") is not True or texts(result) != [ERROR_TEXT]:
                problems.append(f"tools-call-error: expected isError with text {ERROR_TEXT!r}, got {result!r}")
        if check["id"] in EXPECTED_TEXT:
            result = (details or {}).get("result") or {}
            got = " | ".join(texts(result)) if result.get("content") else ""
            if EXPECTED_TEXT[check["id"]] not in got:
                problems.append(f"{scenario}/{check['id']}: expected {EXPECTED_TEXT[check['id']]!r} in {got!r}")
    return problems


class TotalsReport:
    """Prints passed/failed per suite in pytest's terminal summary (outside output capture)."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for label, suites in TOTALS.items():
            write = terminalreporter.write_line
            terminalreporter.write_sep("-", f"conformance totals ({label})")
            write(f"{'suite':<10} {'scenarios':>9} {'passed':>6} {'failed':>6} {'checks ok':>9} {'warnings':>8}")
            for suite, t in suites.items():
                counts = f"{t['scenarios']:>9} {t['passed']:>6} {t['failed']:>6} {t['checks']:>9} {t['warnings']:>8}"
                write(f"{suite:<10} {counts}")


def register_totals(request: pytest.FixtureRequest) -> None:
    """Print the totals table in pytest's terminal summary (once, whichever module asks first)."""
    plugins = request.config.pluginmanager
    if not any(isinstance(p, TotalsReport) for p in plugins.get_plugins()):
        plugins.register(TotalsReport())


def run_cli(suite: str, url: str, out: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run scripts/conformance SUITE against `url` into `out`; the process and the suite's console log."""
    run = subprocess.run(
        [str(RUNNER), suite, url, str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "CONFORMANCE_TIMEOUT": "270"},
    )
    log = (out / "conformance.log").read_text() if (out / "conformance.log").exists() else run.stderr
    return run, log


@dataclass(frozen=True)
class Verdict:
    """One scenario's outcome, as compared between a direct run and a run through Bastion."""

    passed: bool
    failures: tuple[str, ...]  # "check id: message" of each FAILURE check
    problems: tuple[str, ...]  # content_problems: what the statuses do not show
    successes: int = field(default=0, compare=False)
    warnings: int = field(default=0, compare=False)

    def describe(self) -> str:
        if self.passed and not self.problems:
            return "pass"
        return "FAIL " + "; ".join(self.failures + self.problems or ("no SUCCESS check",))


def verdicts(suite: str, url: str, out: Path) -> tuple[dict[str, Verdict], str]:
    """Run `suite` against `url` and judge every scenario (no baseline applied); the suite's log too."""
    _, log = run_cli(suite, url, out)
    judged = {}
    for scenario, checks in read_results(out).items():
        statuses = [c["status"] for c in checks]
        quiet = any(k[:2] == (suite, scenario) for k in KNOWN_WARNINGS)
        passed = "FAILURE" not in statuses and ("SUCCESS" in statuses or quiet)
        failures = tuple(f"{c['id']}: {c.get('errorMessage')}" for c in checks if c["status"] == "FAILURE")
        problems = tuple(content_problems(scenario, checks))
        judged[scenario] = Verdict(passed, failures, problems, statuses.count("SUCCESS"), statuses.count("WARNING"))
    return judged, log


def run_suite(
    suite: str,
    url: str,
    tmp_path: Path,
    *,
    label: str,
    known_warnings: frozenset[tuple[str, str, str]] = frozenset(),
    nothing_to_check: frozenset[str] = frozenset(),
) -> None:
    """Run `suite` against `url` and assert every scenario passed, reading the checks themselves.

    `nothing_to_check` names scenarios allowed to end with INFO checks only (the suite found
    nothing it could verify, and failed nothing); each caller says why beside the name.
    """
    allowed = load_baseline()
    expected = listed_scenarios(suite)
    known = KNOWN_WARNINGS | known_warnings
    out = tmp_path / suite
    run, log = run_cli(suite, url, out)
    results = read_results(out)

    failed, excused, warnings, problems = [], [], [], []
    for scenario, checks in results.items():
        statuses = [c["status"] for c in checks]
        ok = "FAILURE" not in statuses
        # Nothing verified is no pass either, unless the suite's own known warnings are why.
        quiet_ok = any(k[:2] == (suite, scenario) for k in known) or scenario in nothing_to_check
        if "SUCCESS" not in statuses and not quiet_ok:
            ok = False
        if not ok and scenario in allowed:
            excused.append(scenario)
        elif not ok:
            why = "; ".join(f"{c['id']}: {c.get('errorMessage')}" for c in checks if c["status"] == "FAILURE")
            failed.append(f"{scenario}: {why or 'no SUCCESS check'}")
        warned = {(suite, scenario, c["id"]) for c in checks if c["status"] == "WARNING"}
        warnings += sorted(warned - known)
        problems += content_problems(scenario, checks)

    TOTALS.setdefault(label, {})[suite] = {
        "scenarios": len(results),
        "passed": len(results) - len(failed),
        "failed": len(failed),
        "checks": sum(c["status"] == "SUCCESS" for checks in results.values() for c in checks),
        "warnings": sum(c["status"] == "WARNING" for checks in results.values() for c in checks),
    }

    assert "Failed to run scenario" not in log, log[-4000:]
    missing = sorted(expected - set(results))
    assert set(results) == expected, f"scenarios without results: {missing}; log tail:\n{log[-4000:]}"
    assert not failed, "\n".join(failed)
    assert not problems, "\n".join(problems)
    assert not warnings, f"unexpected WARNING checks: {warnings}"
    # The suite's own verdict agrees (the runner passes it no baseline, so only FAILURE checks count).
    if not excused:
        assert run.returncode == 0, f"scripts/conformance exited {run.returncode}:\n{run.stderr}\n{log[-4000:]}"


@contextmanager
def conformance_upstream() -> Iterator[str]:
    """tests/conformance/upstream.py on a free loopback port; yields its MCP URL."""
    for path in (NODE22, RUNNER, *CLI.values()):
        if not path.exists():
            pytest.fail(f"{path} is missing: run scripts/install-node-tools first")
    proc = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        pytest.fail(f"conformance upstream did not start: {line!r}")
    try:
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
