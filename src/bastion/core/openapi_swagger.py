"""A Swagger 2.0 document in OpenAPI 3.0 terms, so that one reading of operations serves both. Pure."""

from __future__ import annotations

from typing import Any

from bastion.core.openapi_refs import FORM, LOCATIONS, METHODS, MULTIPART, Resolver, SpecError

_SWAGGER_ARRAYS = {"csv": "form", "ssv": "spaceDelimited", "pipes": "pipeDelimited"}
_SCHEMA_KEYS = (
    "type", "format", "items", "enum", "default", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf",
)


def as_openapi3(doc: Any) -> dict[str, Any]:
    """`doc` as an OpenAPI 3 document. A 3.x document is returned as it is; a Swagger 2.0 one is
    converted: `servers` from host, basePath and schemes; body and formData parameters as a request
    body under the media type `consumes` names; parameter and response schemas in 3.0 places;
    collectionFormat as style/explode. Its `definitions`, which references point into, stay."""
    if not isinstance(doc, dict):
        raise SpecError("not an OpenAPI document (not an object)")
    if str(doc.get("openapi", "")).startswith("3."):
        return doc
    if str(doc.get("swagger", "")) != "2.0":
        raise SpecError("not an OpenAPI 3.0/3.1 or Swagger 2.0 document (no 'openapi: 3.x' or 'swagger: \"2.0\"' field)")
    paths = doc.get("paths")
    if not isinstance(paths, dict | None):
        raise SpecError("'paths' is not an object")
    resolver = Resolver(doc)
    converted: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("swagger", "paths", "host", "basePath", "schemes")}
    converted["openapi"] = "3.0.3"
    base_path = str(doc.get("basePath") or "").rstrip("/")
    if isinstance(doc.get("host"), str) and doc["host"]:
        schemes = [s for s in _media_list(doc.get("schemes")) if s in ("https", "http")] or ["https"]
        converted["servers"] = [{"url": f"{schemes[0]}://{doc['host']}{base_path}"}]
    elif base_path:
        converted["servers"] = [{"url": base_path}]
    consumes, produces = _media_list(doc.get("consumes")), _media_list(doc.get("produces"))
    out: dict[str, Any] = {}
    for path, raw_item in (paths or {}).items():
        item = resolver.deref(raw_item)
        if not isinstance(item, dict):
            continue
        new_item: dict[str, Any] = {}
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                new_item[method] = _swagger_operation(resolver, item, op, consumes, produces)
        out[str(path)] = new_item
    converted["paths"] = out
    return converted


def _media_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _swagger_schema(param: dict[str, Any]) -> dict[str, Any]:
    """A 2.0 non-body parameter's type fields as a schema (`file` as binary string)."""
    schema = {k: param[k] for k in _SCHEMA_KEYS if k in param}
    if schema.get("type") == "file":
        schema = {"type": "string", "format": "binary"}
    if isinstance(schema.get("items"), dict):
        schema["items"] = {k: v for k, v in schema["items"].items() if k != "collectionFormat"}
    if isinstance(param.get("description"), str):
        schema["description"] = param["description"]
    return schema


def _swagger_operation(
    resolver: Resolver, item: dict[str, Any], op: dict[str, Any], consumes: list[str], produces: list[str]
) -> dict[str, Any]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for source in (item.get("parameters") or [], op.get("parameters") or []):
        for raw in source if isinstance(source, list) else []:
            param = resolver.deref(raw)
            if isinstance(param, dict) and isinstance(param.get("name"), str):
                merged[(param["name"], str(param.get("in")))] = param
    new_op = {k: v for k, v in op.items() if k not in ("parameters", "consumes", "produces", "responses")}
    params: list[dict[str, Any]] = []
    form: dict[str, Any] = {}
    form_required: list[str] = []
    for (name, location), param in merged.items():
        if location == "body":
            media = _pick_media(_media_list(op.get("consumes")) or consumes)
            new_op["requestBody"] = {"required": bool(param.get("required")), "content": {media: {"schema": param.get("schema", {})}}}
        elif location == "formData":
            form[name] = _swagger_schema(param)
            if param.get("required"):
                form_required.append(name)
        elif location in LOCATIONS:
            entry: dict[str, Any] = {"name": name, "in": location, "schema": _swagger_schema(param)}
            entry["schema"].pop("description", None)
            for key in ("required", "description"):
                if key in param:
                    entry[key] = param[key]
            if param.get("type") == "array" and location == "query":
                style = _SWAGGER_ARRAYS.get(str(param.get("collectionFormat", "csv")))
                entry.update({"style": "form", "explode": True} if style is None else {"style": style, "explode": False})
            params.append(entry)
    if form and "requestBody" not in new_op:
        op_consumes = _media_list(op.get("consumes")) or consumes
        files = any(s.get("format") == "binary" for s in form.values())
        media = MULTIPART if files or (MULTIPART in op_consumes and FORM not in op_consumes) else FORM
        schema: dict[str, Any] = {"type": "object", "properties": form}
        if form_required:
            schema["required"] = form_required
        new_op["requestBody"] = {"required": bool(form_required), "content": {media: {"schema": schema}}}
    if params:
        new_op["parameters"] = params
    responses: dict[str, Any] = {}
    media = _pick_media(_media_list(op.get("produces")) or produces)
    raw_responses = op.get("responses")
    for code, raw in (raw_responses.items() if isinstance(raw_responses, dict) else ()):
        response = resolver.deref(raw)
        if not isinstance(response, dict):
            continue
        responses[str(code)] = {"description": str(response.get("description", ""))}
        if "schema" in response:
            responses[str(code)]["content"] = {media: {"schema": response["schema"]}}
    new_op["responses"] = responses
    return new_op


def _pick_media(listed: list[str]) -> str:
    """The JSON media type among those an operation lists, else the first, else JSON."""
    for media in listed:
        if media == "application/json" or media.endswith("+json") or media.endswith("/json"):
            return media
    return listed[0] if listed else "application/json"
