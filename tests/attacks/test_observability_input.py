"""Attack class: bad input on the observability and audit surface (usage, audit, /metrics). Each gets
a 4xx problem+json saying what is wrong, never a 500 from the calendar, the database or the
exposition library; /metrics never answers in a format the scraper did not ask for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import Running, serve, settings_for

pytestmark = pytest.mark.anyio

SCRAPE = "scrape-token-for-observability-input"
PAST_INT64 = str(2**63)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("observability-input")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", metrics_token=SCRAPE)) as running:
        yield running


@pytest.mark.parametrize(
    ("query", "said"),
    [
        # The calendar ends in year 1 and 9999: an offset that moves a time past either end.
        ("/api/v1/usage?since=0001-01-01T00:00:00%2B14:00", "since"),
        ("/api/v1/usage?until=9999-12-31T23:59:59-14:00", "until"),
        ("/api/v1/usage/unused?days=nan", "days"),
        ("/api/v1/usage/unused?days=inf", "days"),
        ("/api/v1/usage/unused?days=1e20", "days"),
        ("/api/v1/usage/unused?days=1000000", "days"),
        # Past what a database integer holds.
        (f"/api/v1/audit?cursor={PAST_INT64}", "cursor"),
        (f"/api/v1/audit?after={PAST_INT64}", "after"),
        ("/api/v1/audit?since=2026-12-02&until=2026-12-01", "until"),
        # No stored name holds a NUL (PostgreSQL cannot even compare one).
        ("/api/v1/usage?server=%00", "server"),
        ("/api/v1/usage?tool=a%00b", "tool"),
        ("/api/v1/audit?actor=%00", "actor"),
        ("/api/v1/audit?action=tools/call%00", "action"),
    ],
)
async def test_bad_usage_and_audit_queries_are_a_400(gateway: Running, query: str, said: str) -> None:
    response = await gateway.api.get(query)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert said in response.json()["detail"]


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("application/openmetrics-text; version=abc", "text/plain; version=0.0.4"),
        ("application/openmetrics-text; version=99", "text/plain; version=0.0.4"),
        ("text/plain; version=1.a", "text/plain; version=0.0.4"),
        ("application/openmetrics-text; q=0, text/plain", "text/plain; version=0.0.4"),
        ("application/openmetrics-text; version=1.0.0", "application/openmetrics-text; version=1.0.0"),
    ],
)
async def test_metrics_answer_only_in_a_format_asked_for_and_spoken(gateway: Running, accept: str, served: str) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.get("/metrics", headers={"authorization": f"Bearer {SCRAPE}", "accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(served)


@pytest.mark.parametrize("authorization", [f"bearer {SCRAPE}", f"BEARER  {SCRAPE}"])
async def test_the_scrape_token_is_read_as_any_bearer_token(gateway: Running, authorization: str) -> None:
    # RFC 9110: the scheme is case-insensitive (Prometheus sends the configured `type` as written).
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.get("/metrics", headers={"authorization": authorization})
    assert response.status_code == 200, response.text
