"""The per-request context every pipeline stage reads and extends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.core.compose import Restriction, ServerView
from bastion.core.grants import Grants
from bastion.core.models import ROLES, CatalogItem, Role
from bastion.core.ports import CallHooks

__all__ = ["ROLES", "CallContext", "Credential", "Principal", "Role", "client_of", "holder_of"]


@dataclass(slots=True)
class Principal:
    """Who is calling: the admin ("admin"), an API token ("token:<id>", limited by its grants), a
    signed-in user, or anyone on a loopback-only `bastion wrap` ("local"). No grants means no limits.

    `user`, `teams` and `role` say whose authority a request carries (a token acts for the user who
    made it); `token` is the API token's id when one was presented. Policy rules match on these."""

    id: str
    kind: str = "admin"
    grants: Grants | None = None
    user: str | None = None
    teams: frozenset[str] = frozenset()
    role: Role | None = None
    token: str | None = None
    oauth_grant: str | None = None
    """For a credential that rotates (Bastion's own OAuth access token), the grant it was issued
    under, which its refreshed successors share; a 2025-11-25 session is bound to it. None: the
    session is bound to the credential itself."""
    expires: float | None = None
    """When the credential stops proving this (epoch seconds), if it says (an OAuth access token)."""


def holder_of(principal: Principal | None) -> str:
    """Whose a request's per-caller things are (its bounds, the A2A tasks it starts): the user its
    credential acts for (all of a user's tokens share them), else the principal itself (the admin,
    a token without a user); "anonymous" before anyone is known."""
    if principal is None:
        return "anonymous"
    return f"user:{principal.user}" if principal.user is not None else principal.id


def client_of(principal: Principal | None) -> str | None:
    """Which of a caller's credentials a request came with, stable for its life: an OAuth grant
    (its refreshed tokens share it), else the API token or sign-in session, else the principal."""
    if principal is None:
        return None
    return principal.oauth_grant or principal.token or principal.id


@dataclass(slots=True)
class Credential:
    """What a caller presented, as the edge parsed it: the Authorization header and the client's
    address. Only the authenticate stage turns it into a principal (see `pipeline.authn`)."""

    authorization: str | None
    client_ip: str | None
    verified: tuple[object, Principal] | None = None
    """Who verified it and whom it proved: a request is verified once, then read from here."""


@dataclass(slots=True)
class CallContext:
    server: str
    method: str
    params: dict[str, Any]
    credential: Credential | None
    principal: Principal | None = None
    """Set by the authenticate stage from `credential`, never by an entry point."""
    hooks: CallHooks | None = None
    view: ServerView | None = None
    restriction: Restriction | None = None
    """Set by authorize when the virtual server has a policy: what this caller may see and use."""
    item: CatalogItem | None = None
    upstream_params: dict[str, Any] | None = None
    address: str | None = None
    """The client's network address, as the edge saw it (for the audit log)."""
    trace_headers: dict[str, str] | None = None
    """The HTTP request's `traceparent`/`tracestate` headers, when it had them (for tracing)."""
    trace: dict[str, str] | None = None
    """With tracing on, an unsampled request's trace context: the `_meta` entries it passes upstream."""
    upstream_seconds: float = 0.0
    """Time spent waiting on upstreams so far (dispatch adds each attempt); observe reports it."""
    check_arguments: bool = False
    """Set by entry points that promise schema errors before the call (the REST facade)."""
