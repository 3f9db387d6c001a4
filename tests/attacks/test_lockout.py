"""Attack class: locking someone else out (issue 9, finding 15a). Wrong passwords from one address
lock that address (on that account, then everywhere), never the account's owner elsewhere; only a
high, short account-wide limit slows guessing spread over many addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import Running, serve, settings_for
from tests.identity import PASSWORD, make_user

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", login_max_account_failures=10)) as running:
        await make_user(running, "boss@example.com", "admin")
        yield running


async def _login(gateway: Running, address: str, password: str) -> httpx2.Response:
    # The harness's uvicorn believes X-Forwarded-For from loopback: each request comes "from" `address`.
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        body = {"email": "boss@example.com", "password": password}
        return await http.post("/api/v1/auth/login", json=body, headers={"x-forwarded-for": address})


async def test_wrong_passwords_from_one_address_do_not_lock_the_admin_out_elsewhere(gateway: Running) -> None:
    for _ in range(6):
        await _login(gateway, "203.0.113.9", "wrong")
    assert (await _login(gateway, "203.0.113.9", PASSWORD)).status_code == 429  # the guesser is locked
    assert (await _login(gateway, "198.51.100.7", PASSWORD)).status_code == 200  # the owner is not


async def test_guessing_spread_over_many_addresses_meets_the_account_wide_limit(gateway: Running) -> None:
    for i in range(10):
        assert (await _login(gateway, f"203.0.113.{i + 1}", "wrong")).status_code == 401
    refused = await _login(gateway, "203.0.113.200", "wrong")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) <= 60  # short: an account-wide lock must not be a long outage
