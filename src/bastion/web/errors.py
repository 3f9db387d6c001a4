"""Where BastionErrors leave Bastion: as HTTP problem+json, or as JSON-RPC errors (one function each)."""

from __future__ import annotations

import json
import logging
from typing import Any

from mcp import MCPError
from starlette.responses import Response

from bastion.core.errors import BastionError, TooManyRequests, UpstreamRpcError

log = logging.getLogger("bastion.web")


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="bastion"'
    return Response(json.dumps(body), status_code=status, media_type="application/problem+json", headers=headers)


def problem_from(exc: BastionError) -> Response:
    extra = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool | list)}
    retry_after = exc.extra.get("retry_after") if isinstance(exc, TooManyRequests) else None
    headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
    return problem(exc.http_status, exc.title, exc.detail, headers, **extra)


def internal_problem(exc: BaseException) -> Response:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return problem(500, "Internal error", "Bastion hit an unexpected error; it has been logged")


def to_mcp_error(exc: BastionError) -> MCPError:
    """The one place a BastionError becomes a JSON-RPC error."""
    if isinstance(exc, UpstreamRpcError):
        return MCPError(exc.rpc_code, exc.detail, exc.data)
    data = {"type": type(exc).__name__, **exc.extra} if exc.extra else {"type": type(exc).__name__}
    return MCPError(exc.jsonrpc_code, exc.detail, data)
