"""What the edge leaves in an ASGI scope for the MCP endpoints: the caller's credential (for the
pipeline's authenticate stage) and the principal it proved (for the edge's own decisions: which
servers exist for the caller, whose session a request names)."""

from __future__ import annotations

from starlette.types import Scope

from bastion.pipeline.context import Credential, Principal, holder_of

PRINCIPAL_SCOPE_KEY = "bastion.principal"
CREDENTIAL_SCOPE_KEY = "bastion.credential"


def credential_of(scope: Scope) -> Credential | None:
    credential = scope.get(CREDENTIAL_SCOPE_KEY)
    return credential if isinstance(credential, Credential) else None


def principal_of(scope: Scope) -> Principal | None:
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else None


def bound_holder(scope: Scope) -> str:
    """Whose per-caller bound a request counts against (sessions, async facade calls): the user its
    credential acts for (all of a user's tokens share it), else the principal itself (the admin, a
    token without a user); "anonymous" before anyone is known (`pipeline.context.holder_of`)."""
    return holder_of(principal_of(scope))
