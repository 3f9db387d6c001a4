"""Client authentication at /token and /revoke against the stored hash of a client's secret.

The SDK's authenticator compares a plain stored secret; Bastion keeps only a hash, so this one
finds the presented secret the same ways (HTTP Basic or form field) and compares hashes."""

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
    if not header.startswith("Basic "):
        raise AuthenticationError("Missing or invalid Basic authentication in Authorization header")
    try:
        decoded = base64.b64decode(header[6:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise AuthenticationError("Invalid Basic authentication header") from None
    basic_id, sep, secret = decoded.partition(":")
    if not sep or unquote(basic_id) != client_id:
        raise AuthenticationError("Client ID mismatch in Basic auth")
    return unquote(secret)
