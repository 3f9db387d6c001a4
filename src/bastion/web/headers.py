"""Security headers on every HTTP response Bastion writes (REST, MCP, probes, errors).

A header the response already set (the SDK's `cache-control: no-cache` on event streams, a page's
own content security policy) is kept; only missing ones are added.
"""

from __future__ import annotations

from starlette.types import Message, Send

Headers = tuple[tuple[bytes, bytes], ...]

BASE_HEADERS: Headers = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


def security_headers(public_url: str) -> Headers:
    """The headers to add; HSTS only when clients reach Bastion over https."""
    return (*BASE_HEADERS, HSTS) if public_url.startswith("https://") else BASE_HEADERS


def with_headers(send: Send, headers: Headers) -> Send:
    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            current = list(message.get("headers", ()))
            present = {name.lower() for name, _ in current}
            message["headers"] = current + [h for h in headers if h[0] not in present]
        await send(message)

    return send_secured
