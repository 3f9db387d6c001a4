"""The in-process login throttle: per account and address, per address, and a short account-wide
limit; doubling lockouts, the pair cleared on success (design: bastion/auth/throttle.py)."""

from __future__ import annotations

import pytest

from bastion.auth.throttle import MemoryLoginThrottle

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_account_locks_from_the_guessing_address_only_and_the_lock_doubles() -> None:
    clock = Clock()
    throttle = MemoryLoginThrottle(max_failures=3, lockout=10, max_lockout=25, monotonic=clock)
    for _ in range(2):
        await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.1") == 0
    await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.1") == 10
    assert await throttle.retry_after("a@x.io", "10.0.0.2") == 0  # the owner, elsewhere, is not locked out
    assert await throttle.retry_after("b@x.io", "10.0.0.1") == 0  # the address is still below its limit
    clock.now += 10
    await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.1") == 20
    clock.now += 20
    await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.1") == 25  # capped


async def test_success_clears_the_pair_and_addresses_lock_on_their_own() -> None:
    clock = Clock()
    throttle = MemoryLoginThrottle(max_failures=2, max_ip_failures=3, lockout=5, monotonic=clock)
    await throttle.failed("a@x.io", "10.0.0.1")
    await throttle.succeeded("a@x.io", "10.0.0.1")
    await throttle.failed("a@x.io", "10.0.0.1")
    assert await throttle.retry_after("a@x.io", "10.0.0.1") == 0
    await throttle.failed("b@x.io", "10.0.0.1")
    assert await throttle.retry_after("d@x.io", "10.0.0.1") == 5  # three failures, any accounts, one address
    assert await throttle.retry_after("d@x.io", "10.0.0.9") == 0


async def test_guessing_from_many_addresses_locks_the_account_briefly_and_the_count_restarts() -> None:
    clock = Clock()
    throttle = MemoryLoginThrottle(max_account_failures=4, account_lockout=60, monotonic=clock)
    for i in range(3):
        await throttle.failed("a@x.io", f"10.0.0.{i}")
    assert await throttle.retry_after("a@x.io", "10.9.9.9") == 0
    await throttle.failed("a@x.io", "10.0.0.3")
    assert await throttle.retry_after("a@x.io", "10.9.9.9") == 60  # short, and from everywhere
    clock.now += 60
    await throttle.failed("a@x.io", "10.0.0.4")  # one more failure does not lock it again: the count restarted
    assert await throttle.retry_after("a@x.io", "10.9.9.9") == 0


async def test_the_account_wide_count_forgets_failures_after_a_quiet_window() -> None:
    clock = Clock()
    throttle = MemoryLoginThrottle(max_account_failures=3, account_window=100, monotonic=clock)
    for i in range(2):
        await throttle.failed("a@x.io", f"10.0.0.{i}")
    clock.now += 101
    await throttle.failed("a@x.io", "10.0.0.5")
    assert await throttle.retry_after("a@x.io", None) == 0
