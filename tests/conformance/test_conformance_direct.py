"""The conformance suite against tests/conformance/upstream.py directly, with no gateway between:
the baseline that tells a gateway fault from the suite's or the upstream's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.suite import SUITES, conformance_upstream, register_totals, run_suite

pytestmark = [pytest.mark.node, pytest.mark.database_free]


@pytest.fixture(scope="module")
def upstream_url(request: pytest.FixtureRequest) -> Iterator[str]:
    register_totals(request)
    with conformance_upstream() as url:
        yield url


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suite", SUITES)
def test_conformance_direct(upstream_url: str, suite: str, tmp_path: Path) -> None:
    run_suite(suite, upstream_url, tmp_path, label="direct")
