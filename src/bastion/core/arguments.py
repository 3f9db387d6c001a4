"""Tool arguments against a tool's input schema: every problem, each with a JSON pointer to its field.

Pure (jsonschema only). A schema that is itself invalid, or that points at what it does not hold,
is the upstream's to judge: it is not checked here rather than refusing every call.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, SchemaError, validators
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

MAX_ERRORS = 50
_MAX_MESSAGE = 300
_CACHE_SIZE = 1024
# Validators by the identity of their schema (catalog definitions are immutable while in use); the
# schema itself is kept with its validator so a reused id is never mistaken for it.
_validators: dict[int, tuple[dict[str, Any], Validator | None]] = {}


def pointer(path: Any) -> str:
    """A JSON pointer (RFC 6901) for a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _validator(schema: dict[str, Any]) -> Validator | None:
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
        validator: Validator | None = cls(schema)
    except SchemaError:
        validator = None
    if len(_validators) >= _CACHE_SIZE:
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def argument_errors(schema: Any, arguments: Any) -> list[dict[str, str]]:
    """Every way `arguments` breaks `schema` (at most MAX_ERRORS), as {"pointer", "message"}."""
    if not isinstance(schema, dict):
        return []
    if not isinstance(arguments, dict):
        return [{"pointer": "", "message": "the arguments must be a JSON object"}]
    validator = _validator(schema)
    if validator is None:
        return []
    found: dict[tuple[str, str], None] = {}
    try:
        for error in validator.iter_errors(arguments):
            base = list(error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                for name in error.validator_value:
                    if name not in error.instance:
                        found[(pointer([*base, name]), f"{name!r} is a required property")] = None
            else:
                found[(pointer(base), _short(error.message))] = None
            if len(found) >= MAX_ERRORS:
                break
    except (Unresolvable, SchemaError, RecursionError):
        return []
    return [{"pointer": p, "message": m} for p, m in sorted(found)][:MAX_ERRORS]
