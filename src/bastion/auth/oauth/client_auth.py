"""Client authentication at /token and /revoke against the stored hash of a client's secret.

The SDK's authenticator compares a plain stored secret; Bastion keeps only a hash, so this one
finds the presented secret the same ways (HTTP Basic or form field) and compares hashes.

With HTTP Basic the client_id need not be in the form too (RFC 6749 2.3.1): `basic_client_id`
fills it in before the SDK's handler reads the form, and refuses a form client_id that differs."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.shared.auth import OAuthClientInformationFull
from starlette.requests import Request

from bastion.auth.oauth.clients import Clients, secret_matches


class HashedSecretAuthenticator(ClientAuthenticator):
    def __init__(self, provider: Any, clients: Clients) -> None:
        super().__init__(provider)
        self._clients = clients

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form = await request.form()
        client_id = form.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise AuthenticationError("Missing client_id")
        client = await self._clients.get(client_id)
        if client is None:
            raise AuthenticationError("Invalid client_id")
        method = client.token_endpoint_auth_method
        if method == "none":
            return client
        presented = _presented_secret(request, client_id, method, form.get("client_secret"))
        stored = await self._clients.secret_hash(client_id)
        if stored is None or presented is None or not secret_matches(stored, presented):
            raise AuthenticationError("Invalid client credentials")
        return client


def _presented_secret(request: Request, client_id: str, method: str | None, posted: object) -> str | None:
    if method == "client_secret_post":
        return posted if isinstance(posted, str) and posted else None
    if method != "client_secret_basic":
        raise AuthenticationError(f"Unsupported auth method: {method}")
    header = request.headers.get("authorization", "")
    credentials = basic_credentials(header)
    if credentials is None:
        raise AuthenticationError("Missing or invalid Basic authentication in Authorization header")
    if credentials[0] != client_id:
        raise AuthenticationError("Client ID mismatch in Basic auth")
    return credentials[1]


def basic_credentials(header: str) -> tuple[str, str] | None:
    """The (client_id, secret) of an HTTP Basic Authorization header (each form-urlencoded, RFC 6749
    2.3.1); None if it is not Basic; AuthenticationError if it is Basic but malformed."""
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise AuthenticationError("Invalid Basic authentication header") from None
    basic_id, sep, secret = decoded.partition(":")
    if not sep or not basic_id:
        raise AuthenticationError("Invalid Basic authentication header")
    return unquote(basic_id), unquote(secret)
