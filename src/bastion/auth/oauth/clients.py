"""Who the OAuth clients are: registered ones (RFC 7591, stored with the hash of their secret) and
Client ID Metadata Documents (the client_id is an https URL serving the client's metadata).

A metadata document is fetched as untrusted input (bastion.outbound): a size limit, one total
deadline, no redirects, from an address the SSRF rules allow, in a small pool of its own; it must
name itself as `client_id`, and its redirect URIs follow the registration rules. The URL is the
anonymous caller's choice, so the Outbound given here is public-only (`Outbound.for_strangers`),
whatever the admin allows for upstreams; plain http is accepted only on loopback when that
Outbound allows private addresses (BASTION_OAUTH_CLIENT_METADATA_ALLOW_PRIVATE: tests,
development). Documents are cached for a few minutes; why one was refused is logged at DEBUG only
(no port scanner).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from mcp.shared.auth import OAuthClientInformationFull
from pydantic import ValidationError

from bastion.core.errors import FetchFailed
from bastion.core.oauth import OAuthRepo, StoredClient, redirect_uri_problem
from bastion.core.surrogates import strict_loads
from bastion.outbound import Outbound

log = logging.getLogger("bastion.auth")

SCOPES = ("mcp",)
MAX_DOCUMENT = 64 * 1024
_CACHE_TTL = 300.0
_REFUSED_TTL = 30.0
"""A refused document is asked for again sooner, so a client's fix shows quickly."""
_CACHE_LIMIT = 1000
_GRANT_TYPES = ["authorization_code", "refresh_token"]


def secret_hash(secret: str) -> str:
    # Client secrets are 256 random bits, so a plain SHA-256 is as good as a slow hash here.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_hash: str, presented: str) -> bool:
    return hmac.compare_digest(stored_hash.encode(), secret_hash(presented).encode())


def is_metadata_url(client_id: str) -> bool:
    return client_id.startswith(("https://", "http://"))


class Clients:
    def __init__(
        self,
        repo: OAuthRepo,
        outbound: Outbound,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repo
        self._outbound = outbound
        self._allow_private = outbound.rules.allow_private
        self._now = now
        self._documents: dict[str, tuple[float, OAuthClientInformationFull | None]] = {}

    async def get(self, client_id: str) -> OAuthClientInformationFull | None:
        """The client, or None if unknown (or its metadata document is unusable)."""
        if is_metadata_url(client_id):
            return await self._document(client_id)
        stored = await self._repo.get_client(client_id)
        if stored is None:
            return None
        return OAuthClientInformationFull.model_validate({**stored.metadata, "client_id": client_id})

    async def secret_hash(self, client_id: str) -> str | None:
        stored = None if is_metadata_url(client_id) else await self._repo.get_client(client_id)
        return stored.secret_hash if stored is not None else None

    async def register(self, info: OAuthClientInformationFull) -> None:
        """Store a client registered just now; its secret only as a hash."""
        metadata = info.model_dump(mode="json", exclude={"client_secret", "client_id"}, exclude_none=True)
        hashed = secret_hash(info.client_secret) if info.client_secret else None
        await self._repo.save_client(
            StoredClient(client_id=info.client_id or "", metadata=metadata, secret_hash=hashed, created_at=self._now())
        )

    async def _document(self, url: str) -> OAuthClientInformationFull | None:
        cached = self._documents.get(url)
        if cached is not None and time.monotonic() - cached[0] < (_CACHE_TTL if cached[1] else _REFUSED_TTL):
            return cached[1]
        try:
            client = await self._fetch(url)
        except (ValueError, TypeError, FetchFailed, ValidationError) as exc:
            log.debug("client metadata document %s refused: %s", url[:200], str(exc)[:200])
            client = None
        if len(self._documents) >= _CACHE_LIMIT:
            self._documents.clear()
        self._documents[url] = (time.monotonic(), client)
        return client

    async def _fetch(self, url: str) -> OAuthClientInformationFull:
        self._check_url(url)
        fetched = await self._outbound.fetch(url, untrusted=True, max_bytes=MAX_DOCUMENT)
        if fetched.status != 200:
            raise ValueError(f"fetching it answered {fetched.status}")
        document = strict_loads(fetched.body, "the document")  # its name would break the consent page
        return _client_from_document(url, document)

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname
        if not host or not parts.path or parts.path == "/" or parts.fragment or parts.username:
            raise ValueError("a client id URL needs a host and a path, and no fragment or credentials")
        if parts.scheme == "http" and not (self._allow_private and _is_loopback_name(host)):
            raise ValueError("a client id URL must use https")


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _client_from_document(url: str, document: Any) -> OAuthClientInformationFull:
    if not isinstance(document, dict):
        raise TypeError("the document is not a JSON object")
    if document.get("client_id") != url:
        raise ValueError("the document's client_id is not its own URL")
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise ValueError("the document needs a list of redirect_uris")
    for uri in uris:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise ValueError(problem)
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise ValueError("a client identified by a metadata document authenticates with 'none' (public client)")
    names = ("client_name", "client_uri", "logo_uri", "software_id", "software_version")
    described = {k: document[k] for k in names if isinstance(document.get(k), str)}
    return OAuthClientInformationFull.model_validate(
        {
            **described,
            "client_id": url,
            "redirect_uris": uris,
            "token_endpoint_auth_method": "none",
            "grant_types": _GRANT_TYPES,
            "response_types": ["code"],
            "scope": " ".join(SCOPES),
        }
    )
