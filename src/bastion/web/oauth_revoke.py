"""RFC 7009 token revocation at /revoke, for confidential and public clients alike.

The SDK's handler validates the form with a model whose `client_secret` has no default: a public
client (token_endpoint_auth_method "none", how MCP clients register) has no secret to send, and
its every revocation was refused with 400, leaving a refresh token alive for its whole life. Here
the client is authenticated as at /token (a public one by its id alone), the token is looked up
as an access token and then as this client's refresh token (the hint only changes the order), and
a token that is not this client's, or not found, is answered 200 without revoking anything, as the
RFC asks. An access token past its expiry is still found (its signature, issuer and audience
checked): it names its grant, and revoking it ends that grant as revoking a live one does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import AccessToken, OAuthAuthorizationServerProvider, RefreshToken
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def revocation_endpoint(provider: OAuthAuthorizationServerProvider[Any, Any, Any], clients: ClientAuthenticator) -> Any:
    """The /revoke request handler (the form is read already: see `_form_read`)."""

    async def revoke(request: Request) -> Response:
        try:
            client = await clients.authenticate_request(request)
        except AuthenticationError as exc:
            return _error(401, "invalid_client", exc.message)
        form = await request.form()
        token = form.get("token")
        if not isinstance(token, str) or not token:
            return _error(400, "invalid_request", "the token to revoke is missing")

        async def refresh_token(text: str) -> RefreshToken | None:
            return await provider.load_refresh_token(client, text)

        loaders: list[Callable[[str], Awaitable[AccessToken | RefreshToken | None]]] = [provider.load_access_token, refresh_token]
        if form.get("token_type_hint") == "refresh_token":
            loaders.reverse()  # any other hint, known or not, searches in the usual order
        found: AccessToken | RefreshToken | None = None
        for load in loaders:
            if (found := await load(token)) is not None:
                break
        if found is not None and found.client_id == client.client_id:
            await provider.revoke_token(found)
        return Response(status_code=200, headers=_NO_STORE)

    return revoke


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)
