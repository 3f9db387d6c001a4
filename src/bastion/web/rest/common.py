"""Shared REST helpers: reading JSON bodies safely and the JSON shapes of our objects."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from bastion.core.compose import ServerView
from bastion.core.errors import BadRequest
from bastion.core.models import CatalogItem, QueryApiKey, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.ownership import Clash
from bastion.core.values import nul_at, unfit_number_at
from bastion.web.json_depth import MAX_DEPTH, TooDeep, loads

REDACTED = "********"
_UNFIT_NUMBER = re.compile(rb"NaN|Infinity|[eE]\+?\d\d|\d{300}")
"""What a JSON text must hold to parse to NaN or an infinity: the names, or 1.8e308 and up, which takes an
exponent of two digits or, with one digit, 300 digits before it."""
KIND_FIELDS = {"tool": "tools", "prompt": "prompts", "resource": "resources", "resource_template": "resource_templates"}


async def read_json(request: Request, max_bytes: int) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise BadRequest(f"request body is larger than {max_bytes} bytes")
    if not body:
        raise BadRequest("a JSON body is required")
    value = parse_json(bytes(body))
    # A REST write's text lands in columns: PostgreSQL can neither store nor compare a NUL (a 500).
    # JSON can only spell one as this escape (a raw NUL byte is not valid JSON).
    if b"\\u0000" in body and (where := nul_at(value)) is not None:
        raise BadRequest(f"{where or 'the body'} holds a NUL character (\\u0000), which no field may contain")
    # Nor can a JSON column hold NaN or an infinity (json.loads reads NaN, Infinity and 1e400): only these spell one.
    if _UNFIT_NUMBER.search(body) and (where := unfit_number_at(value)) is not None:
        raise BadRequest(f"{where or 'the body'} holds NaN or a number past a float's range, which no field may contain")
    return value


def parse_json(body: bytes) -> Any:
    """JSON from a request body, or BadRequest saying why not (never a RecursionError or an int-size ValueError)."""
    try:
        return loads(body)
    except TooDeep:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid JSON: it is not UTF-8") from None
    except ValueError:  # Python's int size limit (4300 digits)
        raise BadRequest("the body holds a number with too many digits") from None


def query_text(request: Request, name: str) -> str | None:
    """A text filter from the query string (None when absent or empty); one holding a NUL is refused:
    no stored name holds one, and PostgreSQL cannot even compare one."""
    value = request.query_params.get(name)
    if not value:
        return None
    if "\x00" in value:
        raise BadRequest(f"{name} must not contain a NUL character")
    return value


def query_time(request: Request, name: str) -> datetime | None:
    """A time filter from the query string, in UTC (a time without an offset is UTC); None when
    absent or empty. One the calendar cannot hold in UTC (0001-01-01T00:00:00+14:00 is in year 0)
    is refused, not moved or compared as text out of order."""
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z") from None
    except OverflowError:
        raise BadRequest(f"{name} must be between the years 1 and 9999 in UTC") from None


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def counts(items: list[CatalogItem] | tuple[CatalogItem, ...], upstream: str | None = None) -> dict[str, int]:
    found = Counter(i.kind for i in items if upstream is None or i.upstream == upstream)
    return {field: found.get(kind, 0) for kind, field in KIND_FIELDS.items()}  # type: ignore[call-overload]


def counts_by_upstream(items: list[CatalogItem] | tuple[CatalogItem, ...]) -> dict[str, dict[str, int]]:
    """Every upstream's counts in one pass over the catalog (a list of 100 upstreams would otherwise
    walk 10,000 items a hundred times)."""
    out: dict[str, dict[str, int]] = {}
    for item in items:
        row = out.setdefault(item.upstream, dict.fromkeys(KIND_FIELDS.values(), 0))
        row[KIND_FIELDS[item.kind]] += 1
    return out


def auth_json(spec: UpstreamSpec) -> dict[str, Any]:
    """How Bastion authenticates to the upstream, without any secret."""
    if isinstance(spec.auth, QueryApiKey):
        return {"type": spec.auth.type, "name": spec.auth.name, "value": REDACTED}
    if spec.auth is not None:
        has_secret = spec.auth.client_secret is not None
        return spec.auth.model_dump() | {"client_secret": REDACTED if has_secret else None}
    return {"type": "headers" if spec.headers else "none"}


def clashes_json(clashes: tuple[tuple[str, Clash], ...]) -> list[dict[str, Any]]:
    """An upstream's items held out because another upstream served their name or URI first."""
    grouped: dict[tuple[str, str, str, str, str], list[str]] = {}
    for server, clash in clashes:
        key = (clash.kind, clash.name, clash.held.gateway_name, clash.owner.upstream, clash.owner.gateway_name)
        grouped.setdefault(key, []).append(server)
    return [
        {"kind": k, "name": n, "item": item, "owner": owner, "owner_item": owner_item, "servers": sorted(servers)}
        for (k, n, item, owner, owner_item), servers in sorted(grouped.items())
    ]


def upstream_json(
    upstream: Upstream,
    items: tuple[CatalogItem, ...],
    clashes: tuple[tuple[str, Clash], ...] = (),
    known: dict[str, dict[str, int]] | None = None,
    *,
    editor: bool,
) -> dict[str, Any]:
    """An upstream as the API shows it. What it runs and where it lives (command, args, URL) can carry
    secrets (`--api-key=...`, `?key=...`): shown only to an `editor` (who may change the upstream).
    `known`: counts_by_upstream of the same items, when showing many upstreams."""
    spec, state = upstream.spec, upstream.state
    held = clashes_json(clashes)
    reason = state.status_reason
    if held and reason is None:
        reason = (
            f"{len(held)} item(s) held out: other upstreams served their names or URIs first (see 'clashes'); "
            "an admin can disable, rename or leave out one of each pair"
        )
    return {
        "name": spec.name,
        "transport": spec.transport,
        "url": spec.url if editor else None,
        "command": spec.command if editor else None,
        "args": list(spec.args) if editor else None,
        # Write-only: names are shown so operators can see what is set, values never are.
        "env": {k: REDACTED for k in spec.env},
        "headers": {k: REDACTED for k in spec.headers},
        "auth": auth_json(spec),
        "isolation": spec.isolation,
        "protocol": spec.protocol,
        "enabled": spec.enabled,
        "status": state.status if spec.enabled else "disabled",
        "status_reason": reason,
        "last_seen": state.last_seen.isoformat() if state.last_seen else None,
        "server_info": {"name": state.server_name, "version": state.server_version},
        "protocol_version": state.protocol_version,
        "counts": counts(items, spec.name) if known is None else known.get(spec.name, counts(())),
        "team": spec.team,
        "owner": spec.owner,
        "visibility": spec.visibility,
        "clashes": held,
        "openapi": openapi_json(spec, editor=editor),
        "pin": spec.pin,
        "origin": spec.origin.model_dump() if spec.origin is not None else None,
        "destinations": list(spec.destinations) if editor else None,
    }


def openapi_json(spec: UpstreamSpec, *, editor: bool) -> dict[str, Any] | None:
    """Where a REST upstream's document is and what of it is exposed (an inline document by size only).
    Its addresses, like the upstream's URL, can carry keys: shown only to an `editor`."""
    source = spec.openapi
    if source is None:
        return None
    return {
        "spec_url": spec.url if source.spec is None and editor else None,
        "inline_spec_operations": None if source.spec is None else sum(
            1 for item in (source.spec.get("paths") or {}).values() if isinstance(item, dict) for _ in item
        ),
        "base_url": source.base_url if editor else None,
        "include": source.include.model_dump(mode="json"),
        "exclude": source.exclude.model_dump(mode="json"),
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
