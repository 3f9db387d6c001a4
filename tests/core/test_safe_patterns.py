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


UNEVALUATED_HOSTILE = """
from bastion.core.arguments import argument_errors
schema = {"type": "object", "patternProperties": {"(.*a){12}x": {}}, "unevaluatedProperties": False}
print(argument_errors(schema, {"a" * 40: 1})[0]["message"][:38])
"""


def test_keys_left_to_unevaluated_properties_are_matched_by_re2() -> None:
    """jsonschema's own unevaluatedProperties matches patternProperties with Python's `re`: a 40
    character key against `(.*a){12}x` held the event loop for hours. Run in a child process so the
    old code fails by the timeout instead of hanging the suite."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", UNEVALUATED_HOSTILE], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "Unevaluated properties are not allowed"


BENIGN_UNEVALUATED = [  # (schema, instances): what jsonschema's own keyword says, ours must say too
    (
        {
            "type": "object",
            "properties": {"a": {}},
            "patternProperties": {"^x-": {"type": "integer"}},
            "unevaluatedProperties": False,
        },
        [{"a": 1}, {"a": 1, "x-n": 2}, {"x-n": "s"}, {"b": 1}, {"a": 1, "b": 2, "c": 3}],
    ),
    (
        {
            "type": "object",
            "allOf": [{"properties": {"a": {"type": "string"}}}],
            "anyOf": [{"required": ["b"], "properties": {"b": {}}}, {"patternProperties": {"^c": {}}}],
            "unevaluatedProperties": {"type": "integer"},
        },
        [
            {"a": "s", "b": 1},
            {"a": "s", "cc": "t"},
            {"a": "s", "d": 1},
            {"a": "s", "d": "no"},
            {"a": 1, "d": "no", "e": []},
        ],
    ),
    (
        {
            "$defs": {"base": {"properties": {"kind": {"enum": ["file", "url"]}}}},
            "$ref": "#/$defs/base",
            "if": {"properties": {"kind": {"const": "file"}}},
            "then": {"properties": {"path": {"type": "string"}}},
            "else": {"patternProperties": {"^u": {"type": "string"}}},
            "dependentSchemas": {"mode": {"properties": {"level": {}}}},
            "unevaluatedProperties": False,
        },
        [
            {"kind": "file", "path": "/p"},
            {"kind": "url", "url": "h"},
            {"kind": "file", "url": "h"},
            {"kind": "url", "path": "/"},
            {"kind": "file", "mode": 1, "level": 2},
            {"kind": "file", "level": 2},
        ],
    ),
    (
        {
            "oneOf": [
                {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {}}, "required": ["b"]},
            ],
            "unevaluatedProperties": False,
        },
        [{"a": 1}, {"b": 1}, {"a": 1, "b": 1}, {"a": "s", "b": 1}, {"a": 1, "z": 0}],
    ),
]


@pytest.mark.parametrize(("schema", "instances"), BENIGN_UNEVALUATED)
def test_unevaluated_properties_agree_with_jsonschema_on_benign_patterns(schema: dict, instances: list) -> None:
    from jsonschema import Draft202012Validator

    plain = Draft202012Validator(schema)
    for instance in instances:
        theirs = sorted(e.message for e in plain.iter_errors(instance))
        ours = sorted(e["message"] for e in argument_errors(schema, instance))
        assert ours == theirs, instance
