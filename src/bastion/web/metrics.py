"""GET /metrics: this replica's Prometheus figures (text format, or OpenMetrics when asked).

Protected: a dedicated scrape token (BASTION_METRICS_TOKEN), or any admin credential. A separate
metrics port (BASTION_METRICS_PORT, loopback by default) serves the same registry without a token.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from bastion.auth.tokens import bearer_token
from bastion.core.errors import Forbidden, Unauthenticated
from bastion.pipeline.context import Principal
from bastion.web.errors import problem_from

METRICS_PATH = "/metrics"
Expose = Callable[[str], tuple[bytes, str]]
"""The exposition for an Accept header: (body, content type)."""


class MetricsEndpoint:
    def __init__(self, expose: Expose, scrape_token: str | None) -> None:
        self.expose = expose
        self._token = scrape_token.encode() if scrape_token else None

    def scraper(self, scope: Scope) -> bool:
        """Whether the request carries the scrape token (compared in constant time), read as any
        bearer token is: the scheme's case and the spaces around the token do not matter."""
        if self._token is None:
            return False
        for key, value in scope["headers"]:
            if key == b"authorization":
                try:
                    token = bearer_token(value.decode("latin-1"))
                except Unauthenticated:
                    return False
                return hmac.compare_digest(token.encode("latin-1"), self._token)  # the bytes as sent
        return False

    async def serve(self, scope: Scope, receive: Receive, send: Send, principal: Principal | None) -> None:
        """Answer an admitted request: the scrape token's holder (principal None) or an admin."""
        if principal is not None and not (principal.kind == "admin" or principal.role == "admin"):
            await problem_from(Forbidden("metrics are for the scrape token or an admin"))(scope, receive, send)
            return
        accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), "")
        body, content_type = self.expose(accept)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
