"""Every change over the REST API, every sign-in, and every REST request, told to the observers.

One ASGI wrapper around the REST app (and the public OAuth endpoints), so no route has to
remember: a request that changes something (POST, PUT, PATCH, DELETE) becomes an audit event
named by its route template (`PATCH /api/v1/upstreams/{name}`) with its path parameters as the
target, or for a create (201) what it created, read from the answer (its id and name or email,
and a user's role; never a secret); the sign-in route becomes a sign-in event naming the account
(the email, never the password). A read of the whole configuration is recorded too, and a read a
route refused (401, 403) as the refusal it is, naming who asked. What a record
keeps of the request (a path no route matched, an email, a field's name) is one line, its control
and hidden characters written out. Every REST request also gets one log line (method, route,
status, caller, duration).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.core.hidden_text import reveal, reveal_line
from bastion.core.observation import EdgeEvent, outcome_of_status
from bastion.core.ports import EdgeObserver
from bastion.pipeline.context import Principal
from bastion.web.json_depth import loads
from bastion.web.mcp_endpoint import PRINCIPAL_SCOPE_KEY

log = logging.getLogger("bastion.rest")

_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGN_IN_PATHS = frozenset({"/api/v1/auth/login"})
_MAX_PEEK = 64 * 1024
_AUDITED_READS = frozenset({"GET /api/v1/config"})
"""Reads recorded as the changes are: the configuration export shows everything Bastion is set up with."""
_NAMING = ("id", "name", "email")
"""The only fields of a create's answer (or, failing those, of its request) that name what it made:
never a token's secret, a password or a credential."""
_MAX_NAME = 200
_JOINS = frozenset({"POST /api/v1/teams/{name}/members"})
"""Changes that add a member: the user added (an id or email) joins the target, as its removal's path names it."""


def _template(routes: Sequence[BaseRoute], scope: Scope) -> tuple[str, str]:
    """The matching route's path template and its path parameters as a target string."""
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            params = child.get("path_params", {})
            return str(getattr(route, "path", scope["path"])), "/".join(str(v) for v in params.values())
    return scope["path"], ""


def _json(body: bytes) -> object:
    try:
        return loads(body) if body else None
    except ValueError:
        return None


def _email(body: object) -> str:
    email = body.get("email") if isinstance(body, dict) else None
    return email.strip().lower()[:200] if isinstance(email, str) else ""


def _shown(value: str) -> str:
    """A caller-chosen name as a record keeps it: bounded, with every hidden character written out."""
    return reveal(value[:_MAX_NAME])


def _created(answer: object, asked: object) -> tuple[str, str | None]:
    """What a create made, as a target (its id and name or email, from the answer or else from
    the request) and, for a user, the role it was given."""
    for body in (answer, asked):
        if not isinstance(body, dict):
            continue
        names = [_shown(body[k]) for k in _NAMING if isinstance(body.get(k), str) and body[k]]
        if names:
            role = body.get("role") if body is answer else None
            return "/".join(dict.fromkeys(names)), f"role: {_shown(role)}" if isinstance(role, str) else None
    return "", None


def _fields(body: object) -> str | None:
    """Which fields a change set (their names only: values may be secrets)."""
    if not isinstance(body, dict) or not body:
        return None
    return "fields: " + ", ".join(sorted(str(k)[:64] for k in body)[:50])


def log_request(scope: Scope, template: str, status: int, seconds: float) -> Principal | None:
    """The one log line of a REST request; the caller it names (None for anonymous)."""
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    principal = principal if isinstance(principal, Principal) and principal.kind != "anonymous" else None
    log.info(
        "%s %s -> %d",
        scope["method"],
        template,
        status,
        extra={"fields": {
            "event": "rest",
            "user": principal.user if principal else None,
            "token_id": principal.token if principal else None,
            "principal": principal.id if principal else None,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }},
    )
    return principal


class Audited:
    """Wraps an ASGI app; tells `observers` of changes and sign-ins once each request is answered.

    `uses` are route templates whose POSTs use a server's items rather than change anything (the
    facade's tool and prompt calls): the pipeline audits those as the calls they are, once, as it
    does the same call over MCP, so they are logged here but not recorded as changes."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        observers: Sequence[EdgeObserver],
        uses: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.routes = routes
        self.observers = tuple(observers)
        self.uses = uses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, start = time.time(), time.perf_counter()
        status = 500
        change = scope["method"] in _CHANGES
        body, answer = bytearray(), bytearray()

        async def peek() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _MAX_PEEK:
                body.extend(message.get("body", b"")[: _MAX_PEEK - len(body)])
            return message

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and status == 201 and len(answer) < _MAX_PEEK:
                answer.extend(message.get("body", b"")[: _MAX_PEEK - len(answer)])
            await send(message)

        try:
            await self.app(scope, peek if change else receive, watch)
        finally:
            self._tell(scope, status, started, time.perf_counter() - start, bytes(body), bytes(answer))

    def _tell(self, scope: Scope, status: int, started: float, seconds: float, raw: bytes, answer: bytes) -> None:
        method = scope["method"]
        template, target = _template(self.routes, scope)
        principal = log_request(scope, template, status, seconds)
        action = f"{method} {template}"
        read = action in _AUDITED_READS
        # A read a route refused (another user's grants, say) is a refused request like the edge's.
        refused = method not in _CHANGES and status in (401, 403)
        if (method not in _CHANGES and not read and not refused) or template in self.uses:
            return
        client = scope.get("client")
        address = str(client[0]) if client else None
        body = _json(raw)
        sign_in = scope["path"] in SIGN_IN_PATHS
        details = [f"HTTP {status}", None if sign_in else _fields(body)]
        if status == 201 and not target and not sign_in:
            target, role = _created(_json(answer), body)
            details.append(role)
        member = body.get("user") if isinstance(body, dict) and action in _JOINS and status < 300 else None
        if isinstance(member, str):
            target = f"{target}/{_shown(member)}"
        event = EdgeEvent(
            kind="sign_in" if sign_in else "refused" if refused else "read" if read else "change",
            started=started,
            action=reveal_line(action),
            target=reveal_line(_email(body) if sign_in else target),
            outcome=outcome_of_status(status),
            status=status,
            seconds=seconds,
            reason=("forbidden" if status == 403 else "unauthenticated") if refused else None,
            principal=principal.id if principal else None,
            user=principal.user if principal else None,
            token=principal.token if principal else None,
            address=address,
            detail=reveal_line("; ".join(d for d in details if d)),
        )
        for observer in self.observers:
            try:
                observer.edge_event(event)
            except Exception:
                log.exception("an observer failed")
