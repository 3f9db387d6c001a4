"""The in-process login throttle: per account, per address, doubling lockouts, reset on success."""

from __future__ import annotations

import pytest

from bastion.auth.throttle import MemoryLoginThrottle

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_account_locks_after_max_failures_and_the_lock_doubles() -> None:
    clock = Clock()
    throttle = MemoryLoginThrottle(max_failures=3, lockout=10, max_lockout=25, monotonic=clock)
    for _ in range(2):
        await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.1") == 0
    await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.2") == 10  # the account, from any address
    assert await throttle.retry_after("b@x.io", "10.0.0.1") == 0  # the address is still below its limit
    clock.now += 10
    assert await throttle.retry_after("a@x.io", None) == 0
    await throttle.failed("a@x.io", None)
    assert await throttle.retry_after("a@x.io", None) == 20
    clock.now += 20
    await throttle.failed("a@x.io", None)
    assert await throttle.retry_after("a@x.io", None) == 25  # capped


async def test_success_clears_the_account_and_addresses_lock_on_their_own() -> None:
    clock = Clock()
    throttle = MemoryLoginThrottle(max_failures=2, max_ip_failures=3, lockout=5, monotonic=clock)
    await throttle.failed("a@x.io", "10.0.0.1")
    await throttle.succeeded("a@x.io", "10.0.0.1")
    await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", None) == 0
    await throttle.failed("b@x.io", "10.0.0.1")
    assert await throttle.retry_after("c@x.io", "10.0.0.1") == 5  # three failures from one address
    assert await throttle.retry_after("c@x.io", "10.0.0.9") == 0
