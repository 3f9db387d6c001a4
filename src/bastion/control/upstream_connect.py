"""Connecting a user's own account to a per-user OAuth upstream (authorization code + PKCE S256).

`start` gives the signed-in user a link to Bastion's start page; its `state` is bound server-side to
that user and upstream, single use and short-lived. On that page the user signs in again (`admit`):
only then does this browser get a nonce (its hash kept with the flow) and the provider's URL. `finish`
(the callback) needs that nonce, so a link sent to someone else's browser cannot connect their
account to the starter's user (account-linking CSRF); it keeps the tokens sealed for the user alone."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2

from bastion.control.gateway import Gateway
from bastion.core.errors import BadRequest, Forbidden, NotFound
from bastion.core.grants import reach_of
from bastion.core.identity import can_see
from bastion.core.models import OAuthUserGrant, UpstreamSpec
from bastion.core.ports import ConnectFlow, UpstreamTokenStore
from bastion.pipeline.context import Principal
from bastion.upstream.guard import AddressGuard
from bastion.upstream.user_oauth import token_request

CALLBACK_PATH = "/oauth/upstream/callback"
START_PATH = "/oauth/upstream/start"
FLOW_TTL = timedelta(minutes=10)
OTHER_BROWSER = "finish connecting in the browser where you signed in to Bastion: open the connect link there"


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def same_secret(secret: str | None, stored_hash: str | None) -> bool:
    """Whether `secret` hashes to `stored_hash` (constant time); never for a missing one."""
    if not secret or stored_hash is None:
        return False
    return hmac.compare_digest(state_hash(secret).encode(), stored_hash.encode())


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UpstreamConnect:
    def __init__(
        self,
        gateway: Gateway,
        store: UpstreamTokenStore,
        http: httpx2.AsyncClient,
        base_url: str,
        *,
        guard: AddressGuard | None = None,
        timeout: float = 15.0,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._gateway = gateway
        self._store = store
        self._http = http
        self.redirect_uri = base_url.rstrip("/") + CALLBACK_PATH
        self.start_url = base_url.rstrip("/") + START_PATH
        self._guard = guard
        self._timeout = timeout
        self._now = now

    def _grant_for(self, principal: Principal, name: str) -> tuple[str, OAuthUserGrant]:
        """(verified user id, the upstream's grant settings) for a user who may use this upstream."""
        snapshot = self._gateway.snapshot
        upstream = snapshot.upstreams.get(name)
        # A token limited to some virtual servers (an API or OAuth token) reaches only the upstreams behind them.
        limit = reach_of(principal.grants, snapshot.servers)
        if upstream is None or not can_see(principal, upstream.spec) or (limit is not None and name not in limit.upstreams):
            raise NotFound(f"upstream {name!r} does not exist")
        if principal.user is None:
            raise Forbidden("only a signed-in user (session or their own API token) can connect an account")
        grant = upstream.spec.auth
        if not isinstance(grant, OAuthUserGrant):
            raise BadRequest(f"upstream {name!r} does not use per-user OAuth (auth type oauth_user)")
        return principal.user, grant

    async def start(self, principal: Principal, name: str) -> str:
        """The link to Bastion's start page of a new flow for this user (it leads on to the provider)."""
        user, _grant = self._grant_for(principal, name)
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        flow = ConnectFlow(user=user, upstream=name, verifier=verifier, expires_at=self._now() + FLOW_TTL)
        await self._store.save_flow(state_hash(state), flow)
        return _with_query(self.start_url, {"state": state})

    async def pending(self, state: str) -> ConnectFlow | None:
        """The live flow `state` names, left in place."""
        return await self._store.get_flow(state_hash(state), self._now()) if state else None

    async def new_csrf(self, state: str) -> str | None:
        """A fresh form token for the flow's start page (only its hash is kept); None if the flow is gone."""
        csrf = secrets.token_urlsafe(32)
        return csrf if state and await self._store.mark_flow(state_hash(state), csrf_hash=state_hash(csrf)) else None

    async def admit(self, state: str, user: str) -> tuple[str, str]:
        """(this browser's nonce, the provider's authorization URL) once `user`, just signed in, is the
        flow's own user; Forbidden for anyone else, BadRequest for a flow that is gone."""
        flow = await self.pending(state)
        if flow is None:
            raise BadRequest("this connect link is unknown, already used or expired; start again")
        if not hmac.compare_digest(flow.user.encode(), user.encode()):
            raise Forbidden("this connect link belongs to another Bastion account; sign in as that account")
        upstream = self._gateway.snapshot.upstreams.get(flow.upstream)
        grant = upstream.spec.auth if upstream is not None else None
        if not isinstance(grant, OAuthUserGrant):
            raise NotFound(f"upstream {flow.upstream!r} no longer uses per-user OAuth")
        nonce = secrets.token_urlsafe(32)
        if not await self._store.mark_flow(state_hash(state), browser_hash=state_hash(nonce)):
            raise BadRequest("this connect link is unknown, already used or expired; start again")
        return nonce, self._provider_url(grant, state, flow.verifier)

    def authorization_endpoint(self, name: str) -> str | None:
        """The provider's authorization endpoint of upstream `name`, if it uses per-user OAuth."""
        upstream = self._gateway.snapshot.upstreams.get(name)
        grant = upstream.spec.auth if upstream is not None else None
        return grant.authorization_url if isinstance(grant, OAuthUserGrant) else None

    def _provider_url(self, grant: OAuthUserGrant, state: str, verifier: str) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        params = {
            "response_type": "code",
            "client_id": grant.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if grant.scope:
            params["scope"] = grant.scope
        return _with_query(grant.authorization_url, params)

    async def finish(self, state: str, code: str | None, error: str | None, browser: str | None) -> str:
        """Take the flow `state` names (once), and if `browser` is the nonce of the browser its user signed
        in with, exchange `code` and keep the tokens; the upstream's name. A refused flow is spent too."""
        flow = await self._store.take_flow(state_hash(state), self._now()) if state else None
        if flow is None:
            raise BadRequest("this connect link is unknown, already used or expired; start again")
        if not same_secret(browser, flow.browser_hash):
            raise Forbidden(OTHER_BROWSER)
        if error is not None or not code:
            raise BadRequest(f"the provider did not authorize the connection ({(error or 'no code')[:64]})")
        upstream = self._gateway.snapshot.upstreams.get(flow.upstream)
        grant = upstream.spec.auth if upstream is not None else None
        if upstream is None or not isinstance(grant, OAuthUserGrant):
            raise NotFound(f"upstream {flow.upstream!r} no longer uses per-user OAuth")
        await self._check_address(upstream.spec, grant.token_url)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": flow.verifier,
        }
        tokens = await token_request(self._http, flow.upstream, grant, form, timeout=self._timeout)
        save = partial(self._store.save_tokens, flow.upstream, flow.user, tokens)
        await self._gateway.reconnect_user(flow.upstream, flow.user, save)
        return flow.upstream

    async def _check_address(self, spec: UpstreamSpec, url: str) -> None:
        if self._guard is not None:
            await self._guard.check(spec.model_copy(update={"url": url}))

    async def connected(self, principal: Principal, name: str) -> bool:
        user, _ = self._grant_for(principal, name)
        return await self._store.get_tokens(name, user) is not None

    async def disconnect(self, principal: Principal, name: str) -> bool:
        """Forget this user's tokens for the upstream; whether there were any."""
        user, _ = self._grant_for(principal, name)
        forgotten = await self._store.delete_tokens(name, user)
        await self._gateway.pool.forget_user(name, user)
        return forgotten
