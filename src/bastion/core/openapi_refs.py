"""Reading an OpenAPI (or Swagger 2.0) document: its local $refs resolved and inlined within limits
that keep a small document from expanding without end, and the error that says a document cannot be
read. What both the Swagger 2.0 conversion (core/openapi_swagger.py) and the operations
(core/openapi_ops.py) build on. Pure.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from bastion.core.values import small_int

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
LOCATIONS = ("path", "query", "header", "cookie")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_DEPTH = 24
MAX_SCHEMA_NODES = 200_000
"""Most nodes the schemas of one document may expand to once references are inlined: a few kilobytes
of references, each doubling the one before, would otherwise expand to gigabytes."""
MAX_OPERATION_NODES = 50_000
"""Most nodes one operation's schemas may expand to."""
MAX_DOCUMENT_DEPTH = 64
"""Deepest a document may nest (real ones nest some 25 levels; as deep as a request body may)."""
MAX_SCHEMA_DEPTH = 40
"""Deepest a tool's schema may nest once references are inlined; deeper parts become `{}` (any):
chains of references each nesting a little would otherwise make schemas no client can read."""


class SpecError(ValueError):
    """The document is not an OpenAPI document this can read (the message says why)."""


def too_deep(value: Any, limit: int = MAX_DOCUMENT_DEPTH) -> bool:
    """Whether `value` (parsed JSON or YAML) nests deeper than `limit` levels; walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False


class TooLarge(SpecError):
    """The schemas expand past MAX_SCHEMA_NODES (or one operation's past MAX_OPERATION_NODES)."""


class Resolver:
    """Follows and inlines the local $refs of `doc`, counting what it inlines against the limits above;
    references deeper than `nesting` are named, not described."""

    def __init__(self, doc: dict[str, Any], nesting: int = MAX_DEPTH) -> None:
        self.doc = doc
        self.nesting = nesting
        self.cache: dict[str, Any] = {}
        self.nodes = 0
        self.operation_start = 0
        self.cut = 0

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise SpecError(f"only local references are supported, not {ref[:100]!r}")
        # A fragment is percent-encoded (#/paths/~1pets~1%7Bid%7D is /pets/{id}); some documents
        # leave a % in a name unencoded, so the pointer as written is tried as well.
        for pointer in dict.fromkeys((unquote(ref[2:]), ref[2:])):
            found, node = self._follow(pointer)
            if found:
                return node
        raise SpecError(f"reference {ref[:100]!r} points at nothing")

    def _follow(self, pointer: str) -> tuple[bool, Any]:
        node: Any = self.doc
        for part in pointer.split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and (index := small_int(key)) is not None and index < len(node):
                node = node[index]
            else:
                return False, None
        return True, node

    def deref(self, node: Any) -> Any:
        """A parameter, body or response object, following its $ref chain."""
        for _ in range(MAX_DEPTH):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            node = self.lookup(node["$ref"])
        raise SpecError("a reference chain is too long")

    def schema(self, node: Any, seen: tuple[str, ...] = (), depth: int = 0) -> Any:
        """`node` with every local $ref inlined; a cycle (or excessive depth) becomes `{}` (any)."""
        self.nodes += 1
        if self.nodes > MAX_SCHEMA_NODES or self.nodes - self.operation_start > MAX_OPERATION_NODES:
            raise TooLarge(f"the document's schemas expand past {MAX_SCHEMA_NODES} nodes once references are inlined")
        if depth > MAX_SCHEMA_DEPTH and isinstance(node, dict | list):
            self.cut += 1
            return {"description": "(nested too deeply)"} if isinstance(node, dict) else []
        if isinstance(node, list):
            return [self.schema(v, seen, depth + 1) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen or len(seen) >= MAX_DEPTH:
                return {"description": f"(recursive: {ref.rsplit('/', 1)[-1]})"}
            if len(seen) >= self.nesting:
                return {"description": f"({ref.rsplit('/', 1)[-1]}: not described here)"}
            if not seen and ref in self.cache:
                return self.cache[ref]
            cut = self.cut
            resolved = self.schema(self.lookup(ref), (*seen, ref), depth)
            siblings = {k: self.schema(v, seen, depth + 1) for k, v in node.items() if k != "$ref"}
            if siblings and isinstance(resolved, dict):
                resolved = {**resolved, **siblings}
            if not seen and self.cut == cut:  # the same wherever it is inlined: nothing in it was cut for depth
                self.cache[ref] = resolved
            return resolved
        out = {k: self.schema(v, seen, depth + 1) for k, v in node.items()}
        return _modernized(out)


def _modernized(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 schema idioms in JSON Schema 2020-12 terms (nullable, boolean exclusive bounds)."""
    if schema.pop("nullable", False) is True:
        kind = schema.get("type")
        if isinstance(kind, str):
            schema["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            schema["type"] = [*kind, "null"]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(exclusive), bool):
            if schema.pop(exclusive) and bound in schema:
                schema[exclusive] = schema.pop(bound)
    return schema
