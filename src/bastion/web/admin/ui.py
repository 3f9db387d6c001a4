"""What every page handler needs: who is signed in, the in-process API, rendering, redirects."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bastion.core.hidden_text import reveal
from bastion.core.surrogates import replaced
from bastion.web.admin.backend import Backend, Reply
from bastion.web.admin.session import Sessions, Viewer
from bastion.web.admin.shortened import clipped
from bastion.web.asgi import client_ip
from bastion.web.json_depth import loads

# Pages load their own script and style sheet and nothing else; forms post only here.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
Handler = Callable[[Request, Viewer], Awaitable[Response]]

# The one-line outcome of a form, carried to the next page in a cookie only Bastion sets (never in the
# URL, where anyone could write a link that makes Bastion appear to say something).
FLASH = "bastion_flash"
_FLASH_JSON = 2600
"""The bytes of JSON the messages may take: as base64 (4 characters a 3 bytes), with the cookie's name
and attributes, well under the 4,096 bytes every browser keeps of a cookie (it drops a larger one)."""
_COOKIE_MAX = 4096
FORM_FIELDS = 1000
"""Fields one form may hold (a server's form has one checkbox per upstream)."""
FIELD_BYTES = 1024 * 1024
"""Bytes one field may hold (a tool's arguments as JSON, a policy)."""
_ONCE = ("csrf", "action")
"""Fields a form sends once: sent twice, which one counts would be a guess."""


def _filters(env: Environment) -> None:
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["when"] = _when
    env.filters["as_is"] = escape  # what the page sends back or follows: a form field's value, a link
    env.filters["clip"] = lambda value, limit: clipped(str(value), limit)  # a stranger's text of any length
    env.filters["pretty"] = _pretty
    env.globals["urlencode"] = urlencode


def _shown(value: Any) -> Any:
    """Every `{{ ... }}` of every page (Jinja's `finalize`): text with each character a browser hides
    written out. Strangers write much of what a page shows (an upstream's descriptions, an identity
    provider's emails, a registry's entries), and one missed field is one spoofed page; `as_is`
    (already Markup) keeps what a form sends back unchanged."""
    return reveal(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _pretty(value: Any, indent: int | None = None) -> str:
    """JSON to read on a page, left to autoescaping: `tojson` wrote each <, >, & and ' as a \\u escape,
    so an upstream's answer or server.json did not read as what it says."""
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False)


def _when(value: Any) -> str:
    if not value:
        return "never"
    text = str(value)
    return text[:16].replace("T", " ") + " UTC" if len(text) >= 16 else text


class Ui:
    def __init__(self, backend: Backend, sessions: Sessions, version: str, provider_name: str | None = None) -> None:
        self.backend = backend
        self.provider_name = provider_name
        """The external identity provider's name, when people may sign in with it."""
        self.sessions = sessions
        self.version = version
        self.env = Environment(
            loader=PackageLoader("bastion.web.admin", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_shown,
        )
        _filters(self.env)

    async def viewer(self, request: Request) -> Viewer | None:
        token = self.sessions.token(request)
        if token is None:
            return None
        me = await self.api(None, "GET", "/api/v1/auth/me", request, token=token)
        user = me.body.get("user") if me.ok and isinstance(me.body, dict) else None
        if not isinstance(user, dict):
            return None
        return Viewer(token, str(user["email"]), str(user["role"]), list(user.get("teams") or []), self.sessions.csrf_for(token))

    async def api(
        self,
        viewer: Viewer | None,
        method: str,
        path: str,
        request: Request,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Reply:
        secret = token if token is not None else (viewer.token if viewer is not None else None)
        return await self.backend.call(method, path, secret, client_ip(request.scope), body=body, params=params)

    def render(self, request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any) -> Response:
        started = time.perf_counter()
        carried = FLASH in request.cookies
        html = self.env.get_template(template).render(
            viewer=viewer,
            version=self.version,
            path=request.url.path,
            request=request,
            provider_name=self.provider_name,
            outcome=_flash_of(request) if context.get("flash", True) else {},
            **context,
        )
        headers = {"content-security-policy": PAGE_CSP, "server-timing": f"render;dur={(time.perf_counter() - started) * 1e3:.1f}"}
        response = HTMLResponse(html, status_code=status, headers=headers)
        if carried:
            response.delete_cookie(FLASH, path="/admin", httponly=True, samesite="strict")  # shown once
        return response

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A handler for signed-in users; others are sent to the sign-in page. POSTs must carry the
        session's CSRF token (and come from our Origin)."""

        async def run(request: Request) -> Response:
            viewer = await self.viewer(request)
            if viewer is None:
                target = "/admin/login?" + urlencode({"next": request.url.path})
                response: Response = RedirectResponse(target, status_code=303)
                if self.sessions.cookie in request.cookies:
                    # Only a cookie that was sent and is no good: a link from another site comes without
                    # the SameSite=Strict cookie, and deleting it then signed the user out.
                    self.sessions.sign_out(response)
                return response
            if request.method == "POST":
                form = await form_of(request)
                if isinstance(form, str):
                    return self.render(request, viewer, "error.html", 400, message=form)
                if not self.sessions.form_ok(request, viewer.token, form):
                    return self.render(request, viewer, "error.html", 403, message="This form has expired; reload the page.")
            return await handler(request, viewer)

        return run


async def form_of(request: Request, max_fields: int = FORM_FIELDS) -> FormData | str:
    """The posted form, read within the UI's limits (no file parts: no form here has a file field),
    or why it is refused. Handlers that read `request.form()` afterwards get this one."""
    try:
        form = await request.form(max_files=0, max_fields=max_fields, max_part_size=FIELD_BYTES)
    except HTTPException as exc:
        return "This form takes no files." if "files" in exc.detail else f"This form cannot be read: {exc.detail}"
    if not all(isinstance(value, str) for _, value in form.multi_items()):
        return "This form takes no files."  # a file part cannot become an API body (a 500 before this)
    for name in _ONCE:
        if len(form.getlist(name)) > 1:
            return f"This form sends the field {name!r} more than once; reload the page."
    return form


def page_of(request: Request, size: int) -> tuple[int, dict[str, str]]:
    """The page a list page asks for (`?page=`, from 0; anything else is the first) and the API's
    `limit`/`offset` for it."""
    try:
        page = max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        page = 0
    return page, {"limit": str(size), "offset": str(page * size)}


def page_count(total: int, size: int) -> int:
    """How many pages of `size` hold `total` items (one, when there are none)."""
    return max(1, -(-total // size))


def back(url: str, note: str | None = None, error: str | None = None) -> Response:
    """Redirect after a POST, with a one-line outcome shown once on the next page."""
    response = RedirectResponse(url, status_code=303)
    outcome = {k: v for k, v in (("note", note), ("error", error)) if v}
    if outcome:
        share = (_FLASH_JSON - 30) // len(outcome)  # 30: the JSON object's keys and punctuation
        shown = {k: _shortened(replaced(v), share) for k, v in outcome.items()}
        value = base64.urlsafe_b64encode(json.dumps(shown, ensure_ascii=False).encode()).decode()
        response.set_cookie(FLASH, value, max_age=60, path="/admin", httponly=True, samesite="strict")
    return response


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def _shortened(text: str, budget: int) -> str:
    """`text`, or its longest start that fits `budget` bytes of JSON with an ellipsis after it (a
    character takes 1 to 6 bytes there, so the count of characters alone cannot tell)."""
    if _json_bytes(text) <= budget:
        return text
    low, high = 0, min(len(text), budget)
    while low < high:
        middle = (low + high + 1) // 2
        if _json_bytes(text[:middle] + "…") <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…"


def _flash_of(request: Request) -> dict[str, str]:
    raw = request.cookies.get(FLASH)
    if not raw or len(raw) > _COOKIE_MAX:
        return {}
    try:  # json_depth: a cookie nesting deep is a ValueError, not a RecursionError; a lone surrogate too
        found = loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, binascii.Error):
        return {}
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if k in ("note", "error") and isinstance(v, str)}
