"""The login throttle's counters and how each locks (auth/throttle.py explains the design); shared
by the in-process and the Redis throttle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    """How one kind of counter locks: after `limit` failures, for `first` s doubling up to `longest`;
    a count idle for `keep` s is forgotten; `restart` starts the count again once it locks."""

    limit: int
    first: float
    longest: float
    keep: float
    restart: bool = False


def login_rules(
    *,
    max_failures: int,
    max_ip_failures: int,
    max_account_failures: int,
    lockout: float,
    max_lockout: float,
    account_lockout: float,
    account_window: float,
    keep: float,
) -> dict[str, Rule]:
    """The three counters, for both throttles."""
    return {
        "pair": Rule(max_failures, lockout, max_lockout, keep),
        "ip": Rule(max_ip_failures, lockout, max_lockout, keep),
        "account": Rule(max_account_failures, account_lockout, account_lockout, account_window, restart=True),
    }
