"""Which patterns a caller's keys are never matched against, and the keys that are never matched."""

from __future__ import annotations

import pytest

from bastion.core.safe_patterns import MAX_KEY, UnsafeMatch, matches, risky, risky_patterns


@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a|ab)*", "((a)*b)*", "(?:a*)*", "^(a{1,})+$", r"(\w+\s?)+$", "x" * 1001])
def test_patterns_that_may_backtrack_exponentially_are_risky(pattern: str) -> None:
    assert risky(pattern)


@pytest.mark.parametrize("pattern", ["^x-", "^[a-z]+$", "^(x-[a-z]+)?$", r"^(\d{1,3}\.){3}\d{1,3}$", "[(]+)+", r"\(a+\)+"])
def test_patterns_without_nested_repetition_are_not(pattern: str) -> None:
    assert not risky(pattern)


def test_a_key_past_the_limit_or_a_risky_pattern_is_never_matched() -> None:
    assert matches("^x-", "x-" + "a" * (MAX_KEY - 2)) and not matches("(", "x")
    with pytest.raises(UnsafeMatch, match="longer than the 256"):
        matches("^x-", "x-" + "a" * (MAX_KEY - 1))
    with pytest.raises(UnsafeMatch, match="too long to match"):
        matches("^(a+)+$", "a" * 30 + "!")


def test_a_schema_holds_a_risky_pattern_at_any_depth() -> None:
    assert risky_patterns({"properties": {"a": {"items": [{"pattern": "(a+)+"}]}}})
    assert risky_patterns({"additionalProperties": {"patternProperties": {"(a|b)*": {}}}})
    assert not risky_patterns({"properties": {"pattern": {"type": "string", "pattern": "^x-"}}})
