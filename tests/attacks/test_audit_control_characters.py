"""Attack class: control characters in what the audit log keeps of a stranger's input. A request
refused at the door kept its path, and a failed sign-in the email it named, raw in the record's
action and target: CR, LF and ESC included (`%0d%0a` in a path), so a record read as text could
start a forged line or repaint a terminal. Every edge event now writes them out (`\\u000d`), as
unknown tool names already were, before the record is made (the hash chain sees the written-out
text)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.harness import Running, serve, settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]

CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
EMAIL = "mallory\r\n\x1b[31m@example.com"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("audit-controls")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        yield running


async def _records(gateway: Running, found: Any) -> list[dict[str, Any]]:
    """The audit records `found` picks, once the writer has flushed them."""
    for _ in range(500):
        items = (await gateway.api.get("/api/v1/audit", params={"limit": "200"})).json()["items"]
        picked = [r for r in items if found(r)]
        if picked:
            return picked
        await anyio.sleep(0.02)
    raise AssertionError("the record was never written")


def _one_line(record: dict[str, Any]) -> None:
    for field in ("action", "target", "detail"):
        assert not CONTROLS.search(record.get(field) or ""), (field, record)


async def test_a_failed_sign_in_keeps_its_email_as_one_line(gateway: Running) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        refused = await http.post("/api/v1/auth/login", json={"email": EMAIL, "password": "wrong-password-123"})
    assert refused.status_code in (400, 401), refused.text
    records = await _records(gateway, lambda r: r["target"].startswith("mallory"))
    for record in records:
        _one_line(record)
        assert record["target"] == "mallory\\u000d\\u000a\\u001b[31m@example.com", record


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_refused_path_keeps_its_controls_written_out(gateway: Running, method: str) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        refused = await http.request(method, f"/api/v1/{method.lower()}%0d%0aforged%1b[31m")
    assert refused.status_code == 401, refused.text
    records = await _records(gateway, lambda r: f"/api/v1/{method.lower()}\\u000d" in r["target"])
    for record in records:
        _one_line(record)
        assert record["action"] == f"{method} /api/v1/{method.lower()}\\u000d\\u000aforged\\u001b[31m", record


async def test_an_unrouted_change_keeps_its_path_as_one_line(gateway: Running) -> None:
    """An authenticated change to no route is audited by the REST wrapper, named by its raw path."""
    answered = await gateway.api.delete("/api/v1/teams%0d%0aforged/x")
    assert answered.status_code == 404, answered.text
    records = await _records(gateway, lambda r: r["action"].startswith("DELETE /api/v1/teams\\u000d"))
    for record in records:
        _one_line(record)
