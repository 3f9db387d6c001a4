"""The OpenAPI 3.1 document of one virtual server's REST facade, from what a caller may use on it.

Pure: lists in (the entries of tools/list, prompts/list, resources/list and templates/list as the
pipeline answered them for this caller), a document out. One operation per tool (request body =
the tool's input schema, `structured` = its output schema), one per prompt, one resource read.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

FACADE_PREFIX = "/api/v1/servers"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_PROBLEM_STATUSES = {
    "400": "The request cannot succeed as sent",
    "401": "No valid credential",
    "403": "The token, role or the server's policy does not allow this",
    "404": "No such server, tool, prompt or resource (for this caller)",
    "429": "A rate limit is used up (Retry-After says when to retry)",
    "502": "The upstream failed",
    "503": "A shared dependency is unavailable; retry shortly",
    "504": "The upstream did not answer in time",
}
_PROBLEM = "#/components/schemas/Problem"


def component_name(text: str) -> str:
    """A name OpenAPI accepts for components and operation ids (^[A-Za-z0-9._-]+$)."""
    return _UNSAFE.sub("_", text) or "_"


def _rebased(schema: Any, base: str) -> Any:
    """`schema` with its local references ("#/$defs/x", "#") pointing into `base` instead, as the
    schema now lives inside the document at `base` and a local reference resolves from the root."""
    if isinstance(schema, dict):
        out = {k: _rebased(v, base) for k, v in schema.items()}
        ref = schema.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            out["$ref"] = base + ref[1:]
        return out
    if isinstance(schema, list):
        return [_rebased(v, base) for v in schema]
    return schema


def schema_component(schemas: dict[str, Any], name: str, schema: Any) -> dict[str, str]:
    """Store `schema` as component `name` and return a reference to it."""
    if not isinstance(schema, dict):
        schema = {"type": "object"}
    if "$id" not in schema:
        schema = _rebased(schema, f"#/components/schemas/{name}")
    schemas[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def problems(*extra: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        code: {"description": text, "content": {"application/problem+json": {"schema": {"$ref": _PROBLEM}}}}
        for code, text in _PROBLEM_STATUSES.items()
    }
    for code in extra:
        out[code] = {
            "description": "The arguments do not match the input schema (every problem, with a JSON pointer)",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}},
        }
    return dict(sorted(out.items()))


class _Ids:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, text: str) -> str:
        base = component_name(text)
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name


def _describe(entry: dict[str, Any], fallback: str) -> dict[str, str]:
    out = {"summary": str(entry.get("title") or entry.get("name") or fallback)[:200]}
    if isinstance(entry.get("description"), str) and entry["description"]:
        out["description"] = entry["description"]
    return out


def _tool_operation(tool: dict[str, Any], op: str, schemas: dict[str, Any]) -> dict[str, Any]:
    body = schema_component(schemas, f"{op}.input", tool.get("inputSchema"))
    output = tool.get("outputSchema")
    structured: dict[str, Any] = {"type": ["object", "null"]}
    if isinstance(output, dict):
        structured = {"anyOf": [schema_component(schemas, f"{op}.output", output), {"type": "null"}]}
    result = {
        "type": "object",
        "required": ["content", "structured", "is_error"],
        "properties": {
            "content": {"type": "array", "items": {"$ref": "#/components/schemas/Content"}},
            "structured": structured,
            "is_error": {"type": "boolean"},
        },
    }
    return {
        "operationId": op,
        **_describe(tool, op),
        "tags": ["tools"],
        "parameters": [
            {
                "name": "Prefer",
                "in": "header",
                "description": "`respond-async`: answer 202 at once and follow the call at its status URL",
                "schema": {"type": "string", "enum": ["respond-async"]},
            }
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": {
                "description": "The tool's result; an upstream tool failure is `is_error: true`",
                "content": {"application/json": {"schema": result}},
            },
            "202": {
                "description": "Started (Prefer: respond-async); follow it at `status_url` or `events_url` (SSE)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AsyncCall"}}},
            },
            "409": {
                "description": "The tool asks its caller for input mid-call: call it with Prefer: respond-async",
                "content": {"application/problem+json": {"schema": {"$ref": _PROBLEM}}},
            },
            **problems("422"),
        },
    }


def _prompt_operation(prompt: dict[str, Any], op: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for argument in prompt.get("arguments") or ():
        if not isinstance(argument, dict) or not isinstance(argument.get("name"), str):
            continue
        field: dict[str, Any] = {"type": "string"}
        if isinstance(argument.get("description"), str):
            field["description"] = argument["description"]
        properties[argument["name"]] = field
        if argument.get("required"):
            required.append(argument["name"])
    body: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": {"type": "string"}}
    if required:
        body["required"] = required
    return {
        "operationId": op,
        **_describe(prompt, op),
        "tags": ["prompts"],
        "requestBody": {"required": bool(required), "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": {
                "description": "The prompt's messages",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PromptResult"}}},
            },
            **problems(),
        },
    }


def _read_operation(resources: list[dict[str, Any]], templates: list[dict[str, Any]]) -> dict[str, Any]:
    known = [str(r.get("uri")) for r in resources[:50]] + [str(t.get("uriTemplate")) for t in templates[:50]]
    listing = "".join(f"\n- `{uri}`" for uri in known)
    return {
        "operationId": "read_resource",
        "summary": "Read a resource",
        "description": f"Resources and templates on this server:{listing}" if listing else "Read a resource by URI.",
        "tags": ["resources"],
        "parameters": [{"name": "uri", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}}],
        "responses": {
            "200": {
                "description": "The resource's contents",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ResourceResult"}}},
            },
            **problems(),
        },
    }


COMMON_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    },
    "ValidationProblem": {
        "allOf": [{"$ref": _PROBLEM}],
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "message"],
                    "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}},
                },
            }
        },
    },
    "Content": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
    "AsyncCall": {
        "type": "object",
        "required": ["id", "state", "status_url", "events_url"],
        "properties": {
            "id": {"type": "string"},
            "state": {"enum": ["running", "input_required", "completed", "failed"]},
            "status_url": {"type": "string"},
            "events_url": {"type": "string"},
        },
    },
    "PromptResult": {
        "type": "object",
        "required": ["messages"],
        "properties": {"description": {"type": "string"}, "messages": {"type": "array", "items": {"type": "object"}}},
    },
    "ResourceResult": {
        "type": "object",
        "required": ["contents"],
        "properties": {"contents": {"type": "array", "items": {"type": "object"}}},
    },
}


def server_document(
    server: str,
    base_url: str,
    version: str,
    tools: list[dict[str, Any]],
    prompts: list[dict[str, Any]],
    resources: list[dict[str, Any]],
    templates: list[dict[str, Any]],
    description: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `server`'s facade, as seen by the caller whose lists these are."""
    schemas: dict[str, Any] = dict(COMMON_SCHEMAS)
    paths: dict[str, Any] = {}
    ids = _Ids()
    root = f"{FACADE_PREFIX}/{quote(server, safe='')}"
    for tool in sorted(tools, key=lambda t: str(t.get("name"))):
        name = str(tool.get("name"))
        paths[f"{root}/tools/{quote(name, safe='')}"] = {
            "post": _tool_operation(tool, ids.new(f"call_{name}"), schemas)
        }
    for prompt in sorted(prompts, key=lambda p: str(p.get("name"))):
        name = str(prompt.get("name"))
        paths[f"{root}/prompts/{quote(name, safe='')}"] = {"post": _prompt_operation(prompt, ids.new(f"prompt_{name}"))}
    if resources or templates:
        paths[f"{root}/resources/read"] = {"get": _read_operation(resources, templates)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Bastion virtual server {server}",
            "version": version,
            "description": description or f"The tools, prompts and resources of virtual server {server}, over REST.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
