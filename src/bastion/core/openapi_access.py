"""Properties that travel one way (OpenAPI 3: `readOnly` ones are in responses only and SHOULD NOT be
sent in requests; `writeOnly` ones are in requests only): a tool's input schema leaves out the first
and its output schema the second, at any depth, through `allOf` and the alternatives of `anyOf` and
`oneOf`, from `properties` and `required` alike, and of the values `additionalProperties` and
`patternProperties` describe (those marked themselves: each key they cover). Pure: over schemas whose
references are inlined. What holds for a body holds for a parameter whose value is an object.

A request body that holds a read-only property anyway has it dropped, not refused: a model that read
an object and sends it back whole (its `id`, its `created_at`) asks for nothing wrong, the API would
ignore or refuse the field, and the caller's arguments set only what the tool offers, as with the
parameters the operator's credentials set (core/openapi_ops.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.core.safe_patterns import matches

Mark = Literal["readOnly", "writeOnly"]
_PARTS = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class Omitted:
    """What a request leaves out of one value: the properties named here, what within others, and
    what the rules for keys no `properties` names say (one rule for each object schema that has any)."""

    names: frozenset[str] = frozenset()
    within: Mapping[str, Omitted] = field(default_factory=dict)
    items: Omitted | None = None
    others: tuple[Others, ...] = ()


@dataclass(frozen=True)
class Others:
    """What one object schema's `patternProperties` (for every key a pattern matches) and
    `additionalProperties` (for every key neither its `properties` names nor a pattern matches) leave
    out of a request: the key, when `whole` (marked itself), else what `within` its value."""

    declared: frozenset[str]
    patterns: tuple[tuple[str, Omitted | None, bool], ...] = ()
    """(pattern, within, whole) for each pattern that leaves out anything."""
    rest: Omitted | None = None
    rest_whole: bool = False

    def rules(self, key: str) -> list[tuple[Omitted | None, bool]]:
        """The (within, whole) that apply to `key` (UnsafeMatch for a key or pattern too costly to match)."""
        matched = [(within, whole) for pattern, within, whole in self.patterns if matches(pattern, key)]
        if key in self.declared or matched or not (self.rest is not None or self.rest_whole):
            return matched
        return [(self.rest, self.rest_whole)]


def _merged(a: Omitted | None, b: Omitted | None) -> Omitted | None:
    if a is None or b is None:
        return a or b
    within = dict(a.within)
    for name, inner in b.within.items():
        within[name] = _merged(within.get(name), inner) or inner
    return Omitted(a.names | b.names, within, _merged(a.items, b.items), (*a.others, *(o for o in b.others if o not in a.others)))


def _common(a: Omitted | None, b: Omitted | None) -> Omitted | None:
    """What both leave out."""
    if a is None or b is None:
        return None
    within = {name: both for name, inner in a.within.items() if (both := _common(inner, b.within.get(name))) is not None}
    others = tuple(o for o in a.others if o in b.others)
    common = Omitted(a.names & b.names, within, _common(a.items, b.items), others)
    return common if common.names or common.within or common.items is not None or common.others else None


def _admits(schema: Any, kind: str) -> bool:
    """Whether a value of JSON type `kind` may match `schema` by its `type` (no type: any may)."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    return kinds is None or kinds == kind or (isinstance(kinds, list) and kind in kinds)


def _alternatives(parts: list[Any], omitted: list[Omitted | None]) -> Omitted | None:
    """What a request drops from a value that may match any of `parts` (`anyOf`, `oneOf`): only what
    every alternative its type admits leaves out, as another may need what one marks read-only
    (an object's properties from the object alternatives, an array's items from the array ones)."""

    def every(kind: str) -> Omitted | None:
        found = [o for part, o in zip(parts, omitted, strict=True) if _admits(part, kind)]
        common = found[0] if found else None
        for other in found[1:]:
            common = _common(common, other)
        return common

    objects, arrays = every("object"), every("array")
    if objects is None and (arrays is None or arrays.items is None):
        return None
    if objects is None:
        return Omitted(items=arrays.items if arrays else None)
    return Omitted(objects.names, objects.within, arrays.items if arrays else None, objects.others)


def _marked(schema: Any, mark: Mark) -> bool:
    """Whether `schema` says `mark` (itself, or any schema of its `allOf`, whose annotations it has)."""
    if not isinstance(schema, dict):
        return False
    parts = schema.get("allOf")
    return schema.get(mark) is True or (isinstance(parts, list) and any(_marked(p, mark) for p in parts))


def _marked_names(schema: dict[str, Any], mark: Mark) -> set[str]:
    """The properties of one object that `mark` leaves out: its own and its `allOf` parts' (which
    describe the same object, so a `required` in one part may name a property of another)."""
    names: set[str] = set()
    properties = schema.get("properties")
    if isinstance(properties, dict):
        names.update(str(k) for k, v in properties.items() if _marked(v, mark))
    parts = schema.get("allOf")
    for part in parts if isinstance(parts, list) else ():
        if isinstance(part, dict):
            names |= _marked_names(part, mark)
    return names


class _Walk:
    def __init__(self, mark: Mark, present: bool) -> None:
        self.mark: Mark = mark
        self.present = present
        # Inlined schemas share subtrees (one resolved $ref used in many places, in many operations):
        # each is walked once. Each entry holds its node, so no other object can take its id.
        self.done: dict[tuple[int, frozenset[str]], tuple[dict[str, Any], tuple[Any, Omitted | None]]] = {}

    def schema(self, node: Any, outer: frozenset[str] = frozenset()) -> tuple[Any, Omitted | None]:
        """`node` without the properties `mark` leaves out (and those of the same object named in
        `outer`), and what that leaves out; `node` itself when nothing changes."""
        if not isinstance(node, dict) or not self.present:
            return node, None
        key = (id(node), outer)
        if key not in self.done:
            self.done[key] = (node, self._schema(node, outer))
        return self.done[key][1]

    def _schema(self, node: dict[str, Any], outer: frozenset[str]) -> tuple[Any, Omitted | None]:
        names = frozenset(_marked_names(node, self.mark) | outer)
        out = dict(node)
        omitted: Omitted | None = Omitted(names) if names else None
        properties = node.get("properties")
        if isinstance(properties, dict):
            kept: dict[str, Any] = {}
            within: dict[str, Omitted] = {}
            for name, sub in properties.items():
                if str(name) not in names:
                    kept[name], inner = self.schema(sub)
                    if inner is not None:
                        within[name] = inner
            out["properties"] = kept
            if within:
                omitted = _merged(omitted, Omitted(within=within))
        required = node.get("required")
        if names and isinstance(required, list):
            out["required"] = [r for r in required if not (isinstance(r, str) and r in names)]
            if not out["required"]:
                del out["required"]
        for word in _PARTS:
            parts = node.get(word)
            if isinstance(parts, list):
                walked = [self.schema(p, names) for p in parts]
                out[word] = [p for p, _ in walked]
                if word == "allOf":  # parts of one value: what any leaves out
                    for _, inner in walked:
                        omitted = _merged(omitted, inner)
                else:
                    omitted = _merged(omitted, _alternatives(parts, [inner for _, inner in walked]))
        if isinstance(node.get("items"), dict):
            out["items"], inner = self.schema(node["items"])
            if inner is not None:
                omitted = _merged(omitted, Omitted(items=inner))
        others = self._others(node, out)
        if others is not None:
            omitted = _merged(omitted, Omitted(others=(others,)))
        if _same(node, out):
            return node, None
        return out, omitted


    def _others(self, node: dict[str, Any], out: dict[str, Any]) -> Others | None:
        """Sets `out`'s `patternProperties` and `additionalProperties` without what `mark` leaves out
        (a schema marked itself goes: the keys it covers are left out whole); and what that leaves out."""
        patterns: list[tuple[str, Omitted | None, bool]] = []
        by_pattern = node.get("patternProperties")
        if isinstance(by_pattern, dict):
            kept: dict[str, Any] = {}
            for pattern, sub in by_pattern.items():
                whole = _marked(sub, self.mark)
                if not whole:
                    kept[pattern], inner = self.schema(sub)
                if whole or inner is not None:
                    patterns.append((str(pattern), None if whole else inner, whole))
            out["patternProperties"] = kept
        rest: Omitted | None = None
        rest_whole = _marked(node.get("additionalProperties"), self.mark)
        if rest_whole:
            del out["additionalProperties"]
        elif isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"], rest = self.schema(node["additionalProperties"])
        if not patterns and rest is None and not rest_whole:
            return None
        properties = node.get("properties")
        declared = frozenset(str(k) for k in properties) if isinstance(properties, dict) else frozenset()
        return Others(declared, tuple(patterns), rest, rest_whole)

def _same(node: dict[str, Any], out: dict[str, Any]) -> bool:
    """Whether `out` (a walked copy of `node`) holds exactly `node`'s values, or equal lists of them."""
    if out.keys() != node.keys():
        return False
    for key, value in node.items():
        new = out[key]
        if isinstance(value, dict) and isinstance(new, dict) and key in ("properties", "patternProperties"):
            if len(new) != len(value) or any(new.get(k) is not v for k, v in value.items()):
                return False
        elif isinstance(value, list) and isinstance(new, list):
            if len(new) != len(value) or any(a is not b for a, b in zip(new, value, strict=False)):
                return False
        elif new is not value:
            return False
    return True


class OneWay:
    """Schemas without the properties that travel the other way, for the operations of `doc` (whose
    inlined schemas share subtrees, each walked once; none at all for a mark the document never uses)."""

    def __init__(self, doc: Any = None) -> None:
        marks = _marks(doc) if doc is not None else {"readOnly", "writeOnly"}
        self._requests = _Walk("readOnly", "readOnly" in marks)
        self._responses = _Walk("writeOnly", "writeOnly" in marks)

    def for_requests(self, schema: Any) -> tuple[Any, Omitted | None]:
        """`schema` for a tool's input: without its read-only properties; and what a request leaves out."""
        return self._requests.schema(schema)

    def for_responses(self, schema: Any) -> Any:
        """`schema` for a tool's output: without its write-only properties."""
        return self._responses.schema(schema)[0]


def _marks(doc: Any) -> set[str]:
    """Which of readOnly and writeOnly `doc` says anywhere; walked without recursion."""
    found: set[str] = set()
    stack = [doc]
    while stack and len(found) < 2:
        node = stack.pop()
        if isinstance(node, dict):
            found.update(k for k in ("readOnly", "writeOnly") if node.get(k) is True)
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return found


def without(value: Any, omitted: Omitted | None) -> Any:
    """`value` (a request body, a parameter's value, or the fields of a body) without what `omitted` leaves out."""
    if omitted is None:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if key in omitted.names:
                continue
            rules = [(omitted.within.get(key), False), *(rule for o in omitted.others for rule in o.rules(str(key)))]
            if any(whole for _, whole in rules):
                continue
            for within, _ in rules:
                inner = without(inner, within)
            out[key] = inner
        return out
    if isinstance(value, list) and omitted.items is not None:
        return [without(v, omitted.items) for v in value]
    return value
