"""Shared REST helpers: reading JSON bodies safely and the JSON shapes of our objects."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from starlette.requests import Request

from bastion.core.compose import ServerView
from bastion.core.errors import BadRequest
from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec

REDACTED = "********"
KIND_FIELDS = {"tool": "tools", "prompt": "prompts", "resource": "resources", "resource_template": "resource_templates"}


async def read_json(request: Request, max_bytes: int) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise BadRequest(f"request body is larger than {max_bytes} bytes")
    if not body:
        raise BadRequest("a JSON body is required")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def counts(items: list[CatalogItem] | tuple[CatalogItem, ...], upstream: str | None = None) -> dict[str, int]:
    found = Counter(i.kind for i in items if upstream is None or i.upstream == upstream)
    return {field: found.get(kind, 0) for kind, field in KIND_FIELDS.items()}  # type: ignore[call-overload]


def auth_json(spec: UpstreamSpec) -> dict[str, Any]:
    """How Bastion authenticates to the upstream, without any secret."""
    if spec.auth is not None:
        has_secret = spec.auth.client_secret is not None
        return spec.auth.model_dump() | {"client_secret": REDACTED if has_secret else None}
    return {"type": "headers" if spec.headers else "none"}


def upstream_json(upstream: Upstream, items: tuple[CatalogItem, ...]) -> dict[str, Any]:
    spec, state = upstream.spec, upstream.state
    return {
        "name": spec.name,
        "transport": spec.transport,
        "url": spec.url,
        "command": spec.command,
        "args": list(spec.args),
        # Write-only: names are shown so operators can see what is set, values never are.
        "env": {k: REDACTED for k in spec.env},
        "headers": {k: REDACTED for k in spec.headers},
        "auth": auth_json(spec),
        "isolation": spec.isolation,
        "enabled": spec.enabled,
        "status": state.status if spec.enabled else "disabled",
        "status_reason": state.status_reason,
        "last_seen": state.last_seen.isoformat() if state.last_seen else None,
        "server_info": {"name": state.server_name, "version": state.server_version},
        "protocol_version": state.protocol_version,
        "counts": counts(items, spec.name),
        "team": spec.team,
        "owner": spec.owner,
        "visibility": spec.visibility,
        "pin": spec.pin,
        "origin": spec.origin.model_dump() if spec.origin is not None else None,
    }


def item_json(item: CatalogItem) -> dict[str, Any]:
    d = item.definition
    out: dict[str, Any] = {
        "kind": item.kind,
        "name": item.name_override or item.gateway_name,
        "gateway_name": item.gateway_name,
        "upstream": item.upstream,
        "original_name": item.original_name,
        "title": d.get("title"),
        "description": item.description,
        "enabled": item.enabled,
        "name_override": item.name_override,
        "description_override": item.description_override,
        "pin_status": item.pin_status,
        "quarantined": item.quarantined,
    }
    if item.kind == "tool":
        out |= {
            "input_schema": d.get("inputSchema"),
            "output_schema": d.get("outputSchema"),
            "annotations": d.get("annotations"),
        }
    elif item.kind == "prompt":
        out["arguments"] = d.get("arguments", [])
    elif item.kind == "resource":
        out |= {"uri": item.key, "mime_type": d.get("mimeType")}
    else:
        out |= {"uri_template": item.key, "mime_type": d.get("mimeType")}
    return out


def server_json(spec: VirtualServerSpec, view: ServerView | None, base_url: str, problems: tuple[str, ...]) -> dict[str, Any]:
    exposed: dict[str, list[str]] = {"tools": [], "prompts": [], "resources": [], "resource_templates": []}
    if view is not None:
        exposed = {
            "tools": sorted(view.tools),
            "prompts": sorted(view.prompts),
            "resources": sorted(view.resources),
            "resource_templates": sorted(view.templates),
        }
    return {
        "name": spec.name,
        "description": spec.description,
        "prefix": spec.prefix,
        "tools": list(spec.tools),
        "prompts": list(spec.prompts),
        "resources": list(spec.resources),
        "upstreams": list(spec.upstreams),
        "policy": spec.policy.model_dump(mode="json") if spec.policy is not None else None,
        "rate_limits": spec.rate_limits.model_dump(exclude_none=True) if spec.rate_limits else None,
        "transforms": {k: t.model_dump(mode="json", exclude_unset=True) for k, t in spec.transforms.items()},
        "discovery": spec.discovery,
        "url": f"{base_url}/servers/{spec.name}/mcp",
        "sse_url": f"{base_url}/servers/{spec.name}/sse",
        "exposed": exposed,
        "problems": list(problems),
        "team": spec.team,
        "owner": spec.owner,
        "visibility": spec.visibility,
    }
