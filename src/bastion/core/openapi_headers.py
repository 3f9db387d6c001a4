"""Which header parameters of an OpenAPI document a caller may set. Pure.

Some a request makes itself (its framing, its cookies) or the operator's credentials set: those are
left out without a word. Others are how a proxy in front of an API speaks for the request: the
client's address, host and scheme (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`...), the user an
authenticating proxy vouches for (`X-Forwarded-User`), or another method or path than the one asked
(`X-HTTP-Method-Override`, `X-Original-URL`). APIs read them for allow-lists, rate limits, audit and
routing; a document may declare them all the same (so its operators can test it). Offered to callers,
they would let one claim any address or user towards the API with the upstream's credentials, or
reach an operation its tool is not: they are left out too, saying which and why.
"""

from __future__ import annotations

import re

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
RESERVED_HEADERS = frozenset({
    # OpenAPI: a header parameter named Accept, Content-Type or Authorization "SHALL be ignored".
    "accept", "content-type", "authorization",
    # The request's own framing, routing and cookies (cookie parameters make the Cookie header).
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
    "expect", "cookie", "proxy-authorization", "proxy-connection",
})

_CLIENT = (
    "it would let a caller claim the client's address, host or scheme to the API"
    " (which may use it for allow-lists, rate limits or audit)"
)
_USER = "it would let a caller claim a user that a proxy in front of the API vouches for"
_ROUTE = "it would let a caller ask a proxy in front of the API for another method or path than the operation's"
SPEAKS_FOR_PROXY: dict[str, str] = {
    **dict.fromkeys((
        "forwarded", "x-forwarded", "x-forwarded-for", "forwarded-for", "x-original-forwarded-for", "via",
        "x-real-ip", "true-client-ip", "cf-connecting-ip", "cf-connecting-ipv6", "fastly-client-ip",
        "x-client-ip", "client-ip", "x-cluster-client-ip", "x-originating-ip", "x-remote-ip", "x-remote-addr",
        "x-envoy-external-address", "x-azure-clientip", "x-appengine-user-ip",
        "x-forwarded-host", "x-original-host", "x-host", "x-forwarded-server", "x-forwarded-port",
        "x-forwarded-proto", "x-forwarded-protocol", "x-forwarded-scheme", "x-forwarded-ssl", "x-url-scheme",
        "front-end-https", "x-forwarded-prefix",
    ), _CLIENT),
    **dict.fromkeys((
        "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username",
        "x-forwarded-access-token", "x-auth-request-user", "x-auth-request-email", "x-auth-request-groups",
        "x-auth-request-preferred-username", "x-auth-request-access-token", "x-remote-user", "remote-user",
        "x-remote-group",
    ), _USER),
    **dict.fromkeys((
        "x-original-url", "x-original-uri", "x-rewrite-url", "x-http-method-override", "x-http-method",
        "x-method-override",
    ), _ROUTE),
}
"""Header names (lower case) a proxy sets for the request it passes on, each with why a caller may not."""


def header_settable(name: str, reserved: frozenset[tuple[str, str]]) -> bool:
    """Whether a caller may set a header parameter named `name`: HTTP can send the name, and neither
    the request itself, the operator's credentials (`reserved`) nor a proxy sets it."""
    lower = name.lower()
    return (
        bool(HEADER_NAME.fullmatch(name)) and lower not in RESERVED_HEADERS and ("header", lower) not in reserved
        and lower not in SPEAKS_FOR_PROXY
    )


def withheld_note(name: str, required: bool, reserved: frozenset[tuple[str, str]]) -> str | None:
    """What to say of a header parameter named `name` left out because a proxy sets it (None for any
    other): which, and why. One the document requires is left out all the same, the operation offered
    without it: the API then answers as it does to a request that lacks it."""
    why = SPEAKS_FOR_PROXY.get(name.lower())
    if why is None or ("header", name.lower()) in reserved:  # the operator's own header: theirs to set
        return None
    note = f"its header parameter {name!r} is not offered to callers: {why}"
    return note + ("; the document requires it: the operation is offered without it" if required else "")
