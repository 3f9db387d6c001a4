"""Sign in with the configured OpenID Connect provider (authorization code + PKCE, state, nonce).

/admin/oidc/start seals the flow (state, nonce, PKCE verifier, where to land, expiry) into a short
cookie limited to the callback's path (SameSite=Lax: it must come back on the provider's redirect)
and sends the browser to the provider. /admin/oidc/callback checks the state in constant time, uses
the flow once, redeems the code, maps the verified claims to a Bastion user and opens a normal
login session. The session cookie is SameSite=Strict, which a browser withholds on a navigation
whose redirects began at another site, so the callback lands the browser with a same-origin page
rather than a redirect. Every failure is the sign-in page with a 4xx (503 when the provider cannot
be reached), audited like a password sign-in.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.auth.oidc_signin import Flow, OidcSignIn, safe_error_code
from bastion.control.external_login import ExternalLogin
from bastion.core.errors import BadRequest, BastionError
from bastion.core.hidden_text import reveal_line
from bastion.core.observation import EdgeEvent, outcome_of_status
from bastion.core.ports import EdgeObserver, Revocations
from bastion.vault.crypto import Sealer, SealError
from bastion.web.admin.pages.signin import LogoutHook, landing, login_page
from bastion.web.admin.session import PATH
from bastion.web.admin.ui import Ui
from bastion.web.asgi import client_ip

log = logging.getLogger("bastion.admin")

FLOW_COOKIE = "bastion_oidc"
CALLBACK = "/admin/oidc/callback"
PROVIDER_LOGOUT = "/admin/oidc/logout"
_CONTEXT = "bastion admin oidc flow"
_SIGNED_IN_CONTEXT = "bastion admin oidc signed in"
_MAX_COOKIE = 3800
_FLOW_TTL = 600
_ACTION = f"GET {CALLBACK}"


@dataclass(frozen=True)
class ProviderSignIn:
    """What the provider's sign-in needs besides the UI."""

    name: str
    client: OidcSignIn
    login: ExternalLogin
    sealer: Sealer
    used: Revocations
    """Flows already used, shared by every replica: a replayed callback is refused."""
    observers: Sequence[EdgeObserver]


class _Refused(BadRequest):
    """A flow that cannot go on (expired, altered, another browser's, used before)."""


def routes(ui: Ui, provider: ProviderSignIn) -> list[Route]:
    async def start(request: Request) -> Response:
        target = landing(request.query_params.get("next"))
        flow = Flow.new()
        try:
            url = await provider.client.authorization_url(flow)
        except BastionError as exc:
            return _page(ui, request, exc.http_status, exc.detail, target)
        sealed = provider.sealer.seal(
            {"id": secrets.token_urlsafe(16), "state": flow.state, "nonce": flow.nonce, "verifier": flow.verifier,
             "next": target, "exp": time.time() + _FLOW_TTL},
            _CONTEXT,
        )
        response = RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
        sessions = ui.sessions
        response.set_cookie(
            sessions.name_for(FLOW_COOKIE), sealed, max_age=_FLOW_TTL, path=sessions.path_for(CALLBACK),
            secure=sessions.secure, httponly=True, samesite="lax",
        )
        return response

    async def callback(request: Request) -> Response:
        started, clock = time.time(), time.perf_counter()
        email, target = "", "/admin"
        try:
            flow, target = await _flow(request, provider, ui.sessions.name_for(FLOW_COOKIE))
            claims, id_token = await provider.client.redeem(_code(request), flow)
            email = provider.login.email_of(claims)
            session, secret, user = await provider.login.sign_in(claims)
            expires = max(1, int(session.expires_at.timestamp() - time.time()))
        except BastionError as exc:
            _audit(provider, request, started, clock, email, exc.http_status)
            response = _page(ui, request, exc.http_status, exc.detail, target)
        else:
            _audit(provider, request, started, clock, user.email, 200)
            response = ui.render(request, None, "signed_in.html", next=target, flash=False)
            ui.sessions.sign_in(response, secret, expires)
            _remember_provider_session(ui, provider, response, id_token, expires)
        response.headers["cache-control"] = "no-store"
        response.delete_cookie(
            ui.sessions.name_for(FLOW_COOKIE), path=ui.sessions.path_for(CALLBACK), secure=ui.sessions.secure,
            httponly=True, samesite="lax",
        )
        return response

    return [
        Route("/admin/oidc/start", start, methods=["GET"]),
        Route(CALLBACK, callback, methods=["GET"]),
        provider_logout_route(ui, provider),
    ]


def _remember_provider_session(ui: Ui, provider: ProviderSignIn, response: Response, id_token: str, expires: int) -> None:
    """This browser signed in at the provider: a sealed cookie keeps the ID token (the hint the
    provider wants when we send the browser to sign out there), or only that it did when the token is
    too large for a cookie."""
    sealed = provider.sealer.seal({"t": id_token}, _SIGNED_IN_CONTEXT)
    if len(sealed) > _MAX_COOKIE:
        sealed = provider.sealer.seal({"t": ""}, _SIGNED_IN_CONTEXT)
    sessions = ui.sessions
    response.set_cookie(
        sessions.provider_cookie, sealed, max_age=expires, path=sessions.path_for(PATH), secure=sessions.secure,
        httponly=True, samesite="strict",
    )


def provider_logout(ui: Ui, provider: ProviderSignIn) -> LogoutHook:
    """Signing out of Bastion after a provider sign-in also signs out at the provider (OpenID Connect
    RP-Initiated Logout): the browser goes on to its end_session_endpoint with the ID token as hint,
    our client id and the sign-in page as the way back. None (a local sign-out only) for a browser
    that signed in with a password."""

    async def hook(request: Request) -> Response | None:
        if not request.cookies.get(ui.sessions.provider_cookie):
            return None
        # Not a redirect: the pages' CSP (form-action 'self') stops a form's redirect to another site,
        # so the sign-out form lands here and this page moves on, same-origin, to PROVIDER_LOGOUT.
        return ui.render(request, None, "signed_out.html", next=PROVIDER_LOGOUT, provider=provider.name, flash=False)

    return hook


def provider_logout_route(ui: Ui, provider: ProviderSignIn) -> Route:
    """GET PROVIDER_LOGOUT: on to the provider's end_session_endpoint with the ID token kept at sign-in
    as the hint (this browser's cookie only, SameSite=Strict: a link from another site finds none and
    lands on the sign-in page)."""

    async def leave(request: Request) -> Response:
        sealed = request.cookies.get(ui.sessions.provider_cookie)
        url: str | None = None
        if sealed:
            try:
                hint: str | None = str(provider.sealer.unseal(sealed, _SIGNED_IN_CONTEXT)["t"]) or None
            except (SealError, KeyError, TypeError, ValueError):
                hint = None
            url = await provider.client.logout_url(hint)
        response = RedirectResponse(url or "/admin/login", status_code=303, headers={"cache-control": "no-store"})
        ui.sessions.forget_provider(response)
        return response

    return Route(PROVIDER_LOGOUT, leave, methods=["GET"])


async def _flow(request: Request, provider: ProviderSignIn, cookie: str) -> tuple[Flow, str]:
    """The flow this callback ends (its sealed state in `cookie`), checked and used up; raises
    _Refused or Unauthenticated."""
    sealed = request.cookies.get(cookie)
    if not sealed:
        raise _Refused("this sign-in has expired or was started in another browser; sign in again")
    try:
        saved: dict[str, Any] = provider.sealer.unseal(sealed, _CONTEXT)
        flow = Flow(str(saved["state"]), str(saved["nonce"]), str(saved["verifier"]))
        flow_id, target, expires = str(saved["id"]), str(saved["next"]), float(saved["exp"])
    except (SealError, KeyError, TypeError, ValueError):
        raise _Refused("this sign-in has expired or was started in another browser; sign in again") from None
    if expires < time.time():
        raise _Refused("this sign-in has expired; sign in again")
    error = request.query_params.get("error")
    if error is not None:
        raise _ProviderSaidNo(f"the identity provider did not sign you in ({safe_error_code(error)})")
    state = request.query_params.get("state") or ""
    if not hmac.compare_digest(state.encode(), flow.state.encode()):
        raise _Refused("this sign-in does not match the one this browser started; sign in again")
    issuer = request.query_params.get("iss")
    if issuer is not None and issuer != provider.client.config.issuer:
        raise _Refused("the answer came from another identity provider (RFC 9207)")  # mix-up defence
    if await provider.used.is_revoked(_used(flow_id)):
        raise _Refused("this sign-in was already used; sign in again")
    await provider.used.revoke(_used(flow_id), _FLOW_TTL * 2)
    return flow, target


class _ProviderSaidNo(BastionError):
    http_status = 401
    title = "Unauthenticated"


def _code(request: Request) -> str:
    code = request.query_params.get("code")
    if not code or len(code) > 4096:
        raise _Refused("the identity provider's answer has no authorization code")
    return code


def _used(flow_id: str) -> str:
    return f"oidc-flow:{flow_id}"


def _page(ui: Ui, request: Request, status: int, message: str, target: str) -> Response:
    # flash=False: this page says only what the flow itself found (never a form outcome left from before).
    status = status if 400 <= status < 600 else 400
    return login_page(ui, request, status, next=target, error=message, flash=False)


def _audit(provider: ProviderSignIn, request: Request, started: float, clock: float, email: str, status: int) -> None:
    event = EdgeEvent(
        kind="sign_in",
        started=started,
        action=_ACTION,
        target=reveal_line(email[:200]),
        outcome=outcome_of_status(status),
        status=status,
        seconds=time.perf_counter() - clock,
        address=client_ip(request.scope),
        detail=f"HTTP {status}; {provider.name}",
    )
    for observer in provider.observers:
        try:
            observer.edge_event(event)
        except Exception:
            log.exception("an observer failed")
