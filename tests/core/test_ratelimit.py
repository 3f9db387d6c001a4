"""Rate limits as data: parsing rates, validating a server's limits, choosing the counters of a call."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.core.ratelimit import Defaults, Rate, RateLimits, counters_for, parse_rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("600/minute", Rate(600, 60)),
        ("10/second", Rate(10, 1)),
        ("5 / hours", Rate(5, 3600)),
        ("100/10 minutes", Rate(100, 600)),
        ("1/day", Rate(1, 86400)),
    ],
)
def test_rates_parse_into_count_and_window(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "600", "600/fortnight", "0/minute", "-1/minute", "x/minute", "10/0 seconds"])
def test_malformed_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_a_servers_limits_are_validated() -> None:
    with pytest.raises(ValidationError):
        RateLimits(token="lots")
    with pytest.raises(ValidationError):
        RateLimits(tools={"fx__echo": "5/eon"})
    with pytest.raises(ValidationError):
        RateLimits.model_validate({"tokens": "5/minute"})


def keys(**kwargs: object) -> list[str]:
    values: dict[str, object] = {
        "server": "vs",
        "method": "tools/call",
        "tool": "fx__echo",
        "principal_id": "token:t1",
        "user": None,
        "token": "t1",
        "defaults": Defaults(),
        "own": None,
    }
    values.update(kwargs)
    return [c.key for c in counters_for(**values)]  # type: ignore[arg-type]


def test_nothing_is_counted_without_limits_or_for_lists() -> None:
    assert keys() == []
    everything = Defaults(token=Rate(1, 1), user=Rate(1, 1), server=Rate(1, 1))
    assert keys(method="tools/list", defaults=everything) == []


def test_defaults_count_per_token_per_caller_and_per_server() -> None:
    everything = Defaults(token=Rate(1, 1), user=Rate(1, 1), server=Rate(1, 1))
    assert keys(defaults=everything) == ["tok:t1", "user:token:t1", "srv:vs"]
    # A signed-in user is counted as that user; the admin has no token to count.
    assert keys(defaults=everything, user="ann") == ["tok:t1", "user:ann", "srv:vs"]
    assert keys(defaults=everything, principal_id="admin", token=None) == ["user:admin", "srv:vs"]


def test_a_servers_own_limits_add_per_server_counters_and_replace_its_default() -> None:
    own = RateLimits(server="50/minute", token="5/minute", user="7/minute", tools={"fx__echo": "2/second"})
    found = counters_for("vs", "tools/call", "fx__echo", "token:t1", None, "t1", Defaults(server=Rate(1, 1)), own)
    assert [(c.key, c.rate) for c in found] == [
        ("srv:vs", Rate(50, 60)),
        ("srv:vs:tok:t1", Rate(5, 60)),
        ("srv:vs:user:token:t1", Rate(7, 60)),
        ("srv:vs:tool:fx__echo", Rate(2, 1)),
    ]
    assert keys(own=own, tool="fx__add") == ["srv:vs", "srv:vs:tok:t1", "srv:vs:user:token:t1"]
    assert keys(own=own, method="resources/read", tool=None) == ["srv:vs", "srv:vs:tok:t1", "srv:vs:user:token:t1"]
