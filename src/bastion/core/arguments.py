"""Tool arguments against a tool's input schema: every problem, each with a JSON pointer to its field.

Pure (jsonschema, with patterns matched by RE2: core/safe_patterns.py). A schema that is itself
invalid, or that points at what it does not hold, is the upstream's to judge: it is not checked here
rather than refusing every call. References resolve within the schema only: a `$ref` to a URL (http,
file) is never fetched (jsonschema's default would, outside the outbound rules, on the event loop),
it leaves the arguments it covers unchecked. So is one with a pattern RE2 cannot read (only a backtracking engine
could match it, and a caller's text could then hold the event loop); a key past MAX_KEY is refused
where a schema matches keys against patterns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, SchemaError, ValidationError, validators
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import Unresolvable

from bastion.core.safe_patterns import MAX_KEY, linear, risky_patterns

log = logging.getLogger("bastion.arguments")
MAX_ERRORS = 50
_MAX_MESSAGE = 300
_CACHE_SIZE = 1024
# Validators by the identity of their schema (catalog definitions are immutable while in use); the
# schema itself is kept with its validator so a reused id is never mistaken for it.
_validators: dict[int, tuple[dict[str, Any], Validator | None, bool]] = {}
_NO_RETRIEVAL: Registry[Any] = Registry()
"""What a schema's references resolve in besides the schema itself: nothing (a URL is never fetched)."""


def pointer(path: Any) -> str:
    """A JSON pointer (RFC 6901) for a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _matches(pattern: Any, text: str) -> bool:
    """By RE2 (the schema was checked to hold only patterns RE2 reads)."""
    compiled = linear(pattern) if isinstance(pattern, str) else None
    return compiled is not None and compiled.search(text) is not None


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{_short(repr(instance))} does not match {pattern!r}")


def _pattern_properties(validator: Any, by_pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in by_pattern.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """Properties neither `properties` names nor a `patternProperties` pattern matches, against `extra`."""
    if not validator.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    others = [k for k in instance if k not in named and not any(_matches(p, k) for p in patterns)]
    if validator.is_type(extra, "object"):
        for key in others:
            yield from validator.descend(instance[key], extra, path=key)
    elif extra is False and others:
        listed = ", ".join(repr(k) for k in sorted(others))
        yield ValidationError(
            f"Additional properties are not allowed ({listed} {'was' if len(others) == 1 else 'were'} unexpected)"
        )


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
    """The keys of `instance` that `schema` and the subschemas applied in place with it evaluate
    (JSON Schema 2020-12, section 11.3: properties, patternProperties by RE2, additional and
    unevaluated properties, and what the passing allOf/anyOf/oneOf parts, if/then/else, dependent
    schemas and references evaluate)."""
    if not isinstance(schema, dict):
        return set()
    keys = set(instance) & set(schema["properties"]) if isinstance(schema.get("properties"), dict) else set()
    for reference in (schema.get("$ref"), schema.get("$dynamicRef")):
        if isinstance(reference, str):
            # As jsonschema's own keywords resolve: the resolver is part of its keyword extension API.
            resolved = validator._resolver.lookup(reference)  # noqa: SLF001
            inner = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(inner, instance, resolved.contents)
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if keyword in schema:
            keys.update(k for k, v in instance.items() if validator.evolve(schema=schema[keyword]).is_valid(v))
    by_pattern = schema.get("patternProperties")
    if isinstance(by_pattern, dict):
        keys.update(k for k in instance if any(_matches(p, k) for p in by_pattern))
    dependent = schema.get("dependentSchemas")
    if isinstance(dependent, dict):
        for name, subschema in dependent.items():
            if name in instance:
                keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for subschema in schema.get(keyword) or ():
            if validator.evolve(schema=subschema).is_valid(instance):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"]) | _evaluated_keys(
                validator, instance, schema.get("then")
            )
        else:
            keys |= _evaluated_keys(validator, instance, schema.get("else"))
    return keys


def _unevaluated_properties(validator: Any, rest: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """Properties nothing else in the schema evaluated, against `rest`: jsonschema's own keyword
    matches patternProperties with Python's `re`, where a caller's key could hold the event loop."""
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    refused = [k for k in instance if k not in evaluated and not validator.evolve(schema=rest).is_valid(instance[k])]
    if refused:
        listed = ", ".join(repr(k) for k in sorted(refused))
        verb = "was" if len(refused) == 1 else "were"
        if rest is False:
            yield ValidationError(f"Unevaluated properties are not allowed ({listed} {verb} unexpected)")
        else:
            yield ValidationError(
                f"Unevaluated properties are not valid under the given schema ({listed} {verb} unevaluated and invalid)"
            )


_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
}
_linear_classes: dict[type, type] = {}


def _linear_class(cls: Any) -> Any:
    """`cls` with its pattern keywords matched by RE2."""
    found = _linear_classes.get(cls)
    if found is None:
        found = _linear_classes[cls] = validators.extend(cls, _KEYWORDS)
    return found


def _validator(schema: dict[str, Any]) -> tuple[Validator | None, bool]:
    """The validator for `schema` (None: not checked here), and whether it matches keys against patterns."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1], cached[2]
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
        validator: Validator | None = None if risky_patterns(schema) else _linear_class(cls)(schema, registry=_NO_RETRIEVAL)
    except SchemaError:
        validator = None
    if len(_validators) >= _CACHE_SIZE:
        _validators.clear()
    text = json.dumps(schema, default=str)
    keys_matched = '"patternProperties"' in text or '"propertyNames"' in text
    _validators[id(schema)] = (schema, validator, keys_matched)
    return validator, keys_matched


def _long_key(value: Any) -> list[Any] | None:
    """The path to a key in `value` longer than MAX_KEY, if any; walked without recursion."""
    stack: list[tuple[Any, list[Any]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, inner in items:
            if isinstance(key, str) and len(key) > MAX_KEY:
                return [*path, key[:40] + "…"]
            stack.append((inner, [*path, key]))
    return None


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def argument_errors(schema: Any, arguments: Any) -> list[dict[str, str]]:
    """Every way `arguments` breaks `schema` (at most MAX_ERRORS), as {"pointer", "message"}."""
    if not isinstance(schema, dict):
        return []
    if not isinstance(arguments, dict):
        return [{"pointer": "", "message": "the arguments must be a JSON object"}]
    validator, keys_matched = _validator(schema)
    if validator is None:
        return []
    if keys_matched and (path := _long_key(arguments)) is not None:
        return [{"pointer": pointer(path), "message": f"a key longer than {MAX_KEY} characters is not accepted here"}]
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
        return []  # a reference out of the schema: the upstream judges
    except (AttributeError, TypeError) as exc:  # a reference to what is no schema (jsonschema's own error)
        log.debug("arguments left unchecked: the schema refers to what is no schema (%s)", type(exc).__name__)
        return []
    return [{"pointer": p, "message": m} for p, m in sorted(found)][:MAX_ERRORS]
