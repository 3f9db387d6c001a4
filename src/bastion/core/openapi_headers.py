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
_PROXY = "it is one a proxy in front of the API sets for the request it passes on, which a caller may not claim"
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
        "x-remote-group", "x-webauth-user", "x-authenticated-user", "x-authenticated-userid",
        "x-forwarded-client-cert", "x-client-cert", "ssl-client-cert", "x-arr-clientcert",
    ), _USER),
    **dict.fromkeys((
        "x-original-url", "x-original-uri", "x-rewrite-url", "x-http-method-override", "x-http-method",
        "x-method-override", "x-forwarded-uri", "x-forwarded-method", "x-original-method", "x-envoy-original-path",
    ), _ROUTE),
}
"""Header names (lower case) a proxy sets for the request it passes on, each with why a caller may not."""

PROXY_PREFIXES: tuple[tuple[str, str], ...] = (
    # Families a proxy or an identity-aware front sets under one prefix (Envoy, Google IAP, Azure
    # App Service, Cloudflare Access, AWS ALB, oauth2-proxy, nginx's client certificate headers).
    ("x-forwarded-", _PROXY), ("x-original-", _ROUTE), ("x-envoy-", _PROXY),
    ("x-auth-request-", _USER), ("x-authenticated-", _USER), ("x-goog-authenticated-", _USER),
    ("x-goog-iap-", _USER), ("x-ms-client-principal", _USER), ("cf-access-", _USER), ("x-amzn-oidc-", _USER),
    ("x-ssl-client", _USER), ("x-client-cert", _USER), ("ssl-client-", _USER), ("x-webauth-", _USER),
)


def proxy_reason(name: str) -> str | None:
    """Why a caller may not set a header named `name` that a proxy sets (None: no proxy sets it).
    An underscore reads as a hyphen: CGI and WSGI servers (and so many APIs) take `X_Forwarded_For`
    for `X-Forwarded-For`."""
    key = name.lower().replace("_", "-")
    why = SPEAKS_FOR_PROXY.get(key)
    if why is not None:
        return why
    return next((why for prefix, why in PROXY_PREFIXES if key.startswith(prefix)), None)


def _operators(name: str, reserved: frozenset[tuple[str, str]]) -> bool:
    """Whether the operator's credentials or headers (`reserved`) set a header named `name`, an
    underscore read as a hyphen (`X_Api_Key` is `X-Api-Key` to a CGI or WSGI server)."""
    key = name.lower().replace("_", "-")
    return any(kind == "header" and held.replace("_", "-") == key for kind, held in reserved)


def header_settable(name: str, reserved: frozenset[tuple[str, str]]) -> bool:
    """Whether a caller may set a header parameter named `name`: HTTP can send the name, and neither
    the request itself, the operator's credentials (`reserved`) nor a proxy sets it."""
    return (
        bool(HEADER_NAME.fullmatch(name)) and name.lower().replace("_", "-") not in RESERVED_HEADERS
        and not _operators(name, reserved) and proxy_reason(name) is None
    )


def withheld_note(name: str, required: bool, reserved: frozenset[tuple[str, str]]) -> str | None:
    """What to say of a header parameter named `name` left out because a proxy sets it (None for any
    other): which, and why. One the document requires is left out all the same, the operation offered
    without it: the API then answers as it does to a request that lacks it."""
    why = proxy_reason(name)
    if why is None or _operators(name, reserved):  # the operator's own header: theirs to set
        return None
    note = f"its header parameter {name!r} is not offered to callers: {why}"
    return note + ("; the document requires it: the operation is offered without it" if required else "")
