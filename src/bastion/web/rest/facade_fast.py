"""The facade's hot path: `POST /api/v1/servers/{name}/tools/{tool}` without Starlette's router,
`Request` or `JSONResponse`, as the MCP endpoint has its own fast path.

Not a side door: it sits behind the edge that checked the credential, the token's grants for this
path and the caller's role (as the routed path does), and makes the call with the routed path's
own pieces: the same visibility check, the same arguments rule and `CallContext`, the same
pipeline (authenticate, policy, rate limits, validation against the input schema, observe for
metrics, logs, audit and usage), `problem_from` for every failure, and the REST log line. The
body is read once and the reply encoded directly. Everything else, `Prefer: respond-async` calls
(followed at a status URL) included, goes to the routed app unchanged.
"""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.core.errors import BastionError
from bastion.web.audited import log_request
from bastion.web.body import TOO_LARGE, read_body, send_json
from bastion.web.errors import internal_problem, problem_from
from bastion.web.rest.facade import CLOSED, TOOL_CALL, ClientGone, Facade, run_sync, too_large, tool_json


def tool_call_target(scope: Scope) -> tuple[str, str] | None:
    """(server, tool) of a plain tool call, as the routed path's `{name}` and `{tool}` match them."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith("/api/v1/servers/"):
        return None
    parts = path.split("/")
    if len(parts) != 7 or parts[5] != "tools" or not parts[4] or not parts[6]:
        return None
    if any(k == b"prefer" and b"respond-async" in v.lower() for k, v in scope["headers"]):
        return None  # an async call: the routed path starts it and serves its status URL
    return parts[4], parts[6]


def encode(value: object) -> bytes:
    """JSON as `JSONResponse` renders it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class FacadeFast:
    """Serves plain tool calls of `facade` itself; hands every other request to `routed`."""

    def __init__(self, facade: Facade, routed: ASGIApp) -> None:
        self.facade = facade
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = tool_call_target(scope)
        if target is None:
            await self.routed(scope, receive, send)
            return
        start = time.perf_counter()
        status = CLOSED
        try:
            status = await self._call(target[0], target[1], scope, receive, send)
        finally:
            log_request(scope, TOOL_CALL, status, time.perf_counter() - start)

    async def _call(self, name: str, tool: str, scope: Scope, receive: Receive, send: Send) -> int:
        facade = self.facade
        try:
            server = facade.visible(scope, name)
            body = await read_body(receive, facade.max_body)
            if body is None:
                return CLOSED
            if body is TOO_LARGE:
                raise too_large(facade.max_body)
            result = await run_sync(facade.pipeline, facade.tool_call(scope, server, tool, body), receive)
            reply = encode(tool_json(result))
        except ClientGone:
            return CLOSED
        except BastionError as exc:
            problem = problem_from(exc)
            await problem(scope, receive, send)
            return problem.status_code
        except Exception as exc:  # noqa: BLE001 - as the routed app's last handler: a 500 without details
            await internal_problem(exc)(scope, receive, send)
            return 500
        await send_json(send, 200, reply, [])
        return 200
