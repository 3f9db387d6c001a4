"""Patterns from someone else's schema are matched against a caller's text in linear time (RE2):
exponential (`^(a+)+$`) and steep polynomial ones (`(.*a){12}x`, `.*.*.*.*.*x`, a value of spaces
against `^\\s*(.*)\\s*=\\s*(.*)\\s*;\\s*$`) held Python's `re`, and with it the event loop, for
seconds to minutes. A pattern only a backtracking engine can read is never matched."""

from __future__ import annotations

import anyio
import pytest

from bastion.core.arguments import argument_errors
from bastion.core.safe_patterns import MAX_KEY, UnsafeMatch, matches, risky_patterns

pytestmark = pytest.mark.anyio
SLOW_FOR_RE = [  # (pattern, a key Python's re takes minutes to refuse, a key it matches)
    ("^(a+)+$", "a" * 30 + "!", "aaa"),
    ("^(a|ab)*c$", "ab" * 40, "ababc"),
    ("(.*a){12}x", "a" * 40, "a" * 12 + "x"),
    (".*.*.*.*.*x", "a" * 250, "ax"),
]


@pytest.mark.parametrize(("pattern", "slow", "match"), SLOW_FOR_RE)
async def test_a_pattern_that_backtracks_is_matched_at_once(pattern: str, slow: str, match: str) -> None:
    with anyio.fail_after(20):  # a hang guard only
        assert not matches(pattern, slow)
    assert matches(pattern, match)


async def test_a_value_matched_against_a_polynomial_pattern_is_checked_at_once() -> None:
    schema = {"type": "object", "properties": {"line": {"type": "string", "pattern": r"^\s*(.*)\s*=\s*(.*)\s*;\s*$"}}}
    with anyio.fail_after(20):
        errors = argument_errors(schema, {"line": " " * 4000})
    assert [e["pointer"] for e in errors] == ["/line"]
    assert argument_errors(schema, {"line": "a = b;"}) == []


async def test_keys_matched_against_patterns_by_properties_and_additional_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "patternProperties": {"(.*a){12}x": {"type": "integer"}},
        "additionalProperties": False,
    }
    with anyio.fail_after(20):
        errors = argument_errors(schema, {"name": "n", "a" * 200: 1})
    assert errors and errors[0]["pointer"] == "" and "unexpected" in errors[0]["message"]
    assert argument_errors(schema, {"name": "n", "a" * 12 + "x": 1}) == []
    assert [e["pointer"] for e in argument_errors(schema, {"a" * 12 + "x": "not a number"})] == ["/" + "a" * 12 + "x"]


def test_a_key_past_the_limit_or_a_pattern_only_backtracking_reads_is_never_matched() -> None:
    assert matches("^x-", "x-" + "a" * (MAX_KEY - 2)) and not matches("(", "x")
    with pytest.raises(UnsafeMatch, match="longer than the 256"):
        matches("^x-", "x-" + "a" * (MAX_KEY - 1))
    with pytest.raises(UnsafeMatch, match="bounded time"):
        matches(r"^(?=a)(a+)+$", "a" * 30 + "!")


def test_a_schema_holds_a_pattern_only_backtracking_reads_at_any_depth() -> None:
    assert risky_patterns({"properties": {"a": {"items": [{"pattern": r"(a)\1"}]}}})
    assert risky_patterns({"additionalProperties": {"patternProperties": {"(?!x)y": {}}}})
    assert not risky_patterns({"properties": {"pattern": {"type": "string", "pattern": "(.*a){12}x"}}})
