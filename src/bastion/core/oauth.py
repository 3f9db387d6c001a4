"""Bastion as an OAuth 2.1 authorization server: what it stores (signing keys, clients, pending
authorization requests, codes, refresh tokens) and the port that stores it. Secrets are kept only
as hashes (codes, refresh tokens, client secrets, CSRF tokens) or sealed (private signing keys)."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from bastion.core.values import Frozen


class SigningKey(Frozen):
    """One of the authorization server's signing keys; the private half sealed, the public a JWK."""

    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    private_sealed: str
    created_at: datetime
    retired_at: datetime | None = None
    """When a newer key took over signing; the key stays published until its tokens expired."""


class StoredClient(Frozen):
    """A dynamically registered client: its RFC 7591 metadata and the hash of its secret, if any."""

    client_id: str
    metadata: dict[str, Any]
    secret_hash: str | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    """When it last obtained tokens; a client never used, or not for long, is forgotten."""


class PendingAuthorization(Frozen):
    """An /authorize request waiting for the user's login and consent."""

    id: str
    client_id: str
    redirect_uri: str
    redirect_uri_explicit: bool
    code_challenge: str
    state: str | None = None
    scopes: tuple[str, ...] = ()
    resource: str
    csrf_hash: str | None = None
    """Hash of the CSRF token of the consent form last shown for it."""
    expires_at: datetime


class AuthorizationGrant(Frozen):
    """An issued authorization code (stored by its hash): single use, bound to all of these."""

    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    redirect_uri_explicit: bool
    code_challenge: str
    resource: str
    scopes: tuple[str, ...] = ()
    expires_at: datetime
    family: str | None = None
    """Once used: the token family it issued, revoked if the code is presented again."""


class RefreshGrant(Frozen):
    """A refresh token (stored by its hash). Each use rotates it; the family is every token that
    descends from one authorization, revoked as a whole when a used token comes back."""

    token_hash: str
    family: str
    client_id: str
    user_id: str
    resource: str
    scopes: tuple[str, ...] = ()
    expires_at: datetime
    used_at: datetime | None = None
    family_revoked_at: datetime | None = None


class OAuthRepo(Protocol):
    """Durable state of the authorization server, shared by every replica."""

    async def list_signing_keys(self) -> list[SigningKey]: ...
    async def add_signing_key(self, key: SigningKey) -> None: ...
    async def retire_signing_keys(self, keep: str, at: datetime) -> None:
        """Mark every key but `keep` retired (those not retired yet)."""
        ...

    async def delete_signing_keys(self, retired_before: datetime) -> None: ...
    async def save_client(self, client: StoredClient) -> None: ...
    async def get_client(self, client_id: str) -> StoredClient | None: ...
    async def touch_client(self, client_id: str, at: datetime) -> None:
        """Record that the client obtained tokens now."""
        ...

    async def purge_clients(self, unused_before: datetime, idle_before: datetime) -> int:
        """Forget clients created before `unused_before` and never used, and clients last used before
        `idle_before`; how many were forgotten."""
        ...

    async def save_pending(self, pending: PendingAuthorization, per_client: int) -> None:
        """Keep it; if its client then has more than `per_client` pending, its oldest are dropped."""
        ...

    async def get_pending(self, pending_id: str) -> PendingAuthorization | None: ...
    async def set_pending_csrf(self, pending_id: str, csrf_hash: str) -> None: ...
    async def take_pending(self, pending_id: str) -> PendingAuthorization | None:
        """Remove and return it: a pending request is answered once."""
        ...

    async def save_code(self, grant: AuthorizationGrant) -> None: ...
    async def get_code(self, code_hash: str) -> AuthorizationGrant | None: ...
    async def take_code(self, code_hash: str, family: str, keep_until: datetime) -> AuthorizationGrant | None:
        """Mark it used, issuing token family `family`, and keep it until `keep_until` so that a replay
        is recognised; None if it was used already (single use)."""
        ...

    async def save_refresh(self, grant: RefreshGrant) -> None: ...
    async def get_refresh(self, token_hash: str) -> RefreshGrant | None: ...
    async def use_refresh(self, token_hash: str, at: datetime) -> bool:
        """Mark it used; False if it already was (a replay)."""
        ...

    async def revoke_family(self, family: str, at: datetime) -> None: ...
    async def grant_alive(self, family: str, client_id: str, now: datetime) -> bool:
        """Whether the grant behind token family `family` still lives at `now`: the family is not
        revoked, one of its refresh tokens has not expired, and client `client_id` is still registered."""
        ...

    async def purge(self, now: datetime) -> None:
        """Drop expired pending requests, codes and refresh tokens."""
        ...


def client_key(client_id: str) -> str:
    """A client_id as a fixed-width key (a metadata document's URL may be long)."""
    return hashlib.sha256(client_id.encode()).hexdigest()


MAX_REDIRECT_URI = 2048
"""As long as /authorize accepts one (a pending request keeps it)."""
_SCRIPT_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about", "filesystem"})
_NOT_REDIRECTS = frozenset({"mailto", "urn"})
"""Schemes a browser cannot be sent back on: an email address, and a URN such as the out-of-band
`urn:ietf:wg:oauth:2.0:oob` (the user copies the code by hand), which OAuth 2.1 and RFC 8252 drop."""


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be a client's redirect URI (None if it can): no fragment (RFC 6749 3.1.2),
    no scheme a browser runs or reads locally, https or an app's own scheme (RFC 8252), and plain
    http only to the loopback interface, where the code never crosses a network."""
    if len(uri) > MAX_REDIRECT_URI:
        return f"a redirect URI is at most {MAX_REDIRECT_URI} characters"
    if "#" in uri:
        return "a redirect URI must not contain a fragment"
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return "a redirect URI must be absolute"
    if scheme in _SCRIPT_SCHEMES:
        return f"a redirect URI may not use the {scheme}: scheme"
    if scheme in _NOT_REDIRECTS:
        return f"a {scheme}: URI is not a redirect URI (OAuth 2.1 has no out-of-band flow)"
    if scheme in ("http", "https"):
        if not parts.hostname:
            return "a redirect URI needs a host"
        if parts.username or parts.password:
            return "a redirect URI must not carry credentials"
        if scheme == "http" and not _loopback(parts.hostname):
            return "a redirect URI uses https, or plain http only to localhost / a loopback address"
    return None


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
