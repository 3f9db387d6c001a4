"""Who is calling a REST route, and the ownership fields of what they create (core/identity.py decides)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request

from bastion.core.compose import ServerView
from bastion.core.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from bastion.core.grants import Reach, reach_of
from bastion.core.identity import Owned, can_see, is_admin, require_edit
from bastion.core.models import VISIBILITIES, Upstream
from bastion.core.pinning import DEFAULT_PIN, lowers_pin
from bastion.core.values import PinMode
from bastion.pipeline.context import Principal
from bastion.web.mcp_endpoint import PRINCIPAL_SCOPE_KEY

TeamExists = Callable[[str], Awaitable[bool]]
OWNERSHIP_FIELDS = frozenset({"team", "visibility"})


def principal_of(request: Request) -> Principal:
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise Unauthenticated("sign in first")
    return principal


def reach(principal: Principal, views: Mapping[str, ServerView]) -> Reach | None:
    """What an API token limited to some virtual servers may read (None: no such limit)."""
    return reach_of(principal.grants, views)


def sees_upstream(principal: Principal, upstream: Upstream, limit: Reach | None) -> bool:
    return can_see(principal, upstream.spec) and (limit is None or upstream.spec.name in limit.upstreams)


def visible_upstream(
    principal: Principal, upstreams: Mapping[str, Upstream], name: str, limit: Reach | None = None
) -> Upstream:
    """The upstream if the caller may see it; NotFound otherwise, exactly as if it did not exist."""
    upstream = upstreams.get(name)
    if upstream is None or not sees_upstream(principal, upstream, limit):
        raise NotFound(f"upstream {name!r} does not exist")
    return upstream


def editable(principal: Principal, thing: Owned, what: str) -> None:
    """Forbidden unless the caller may change `thing` (check it is visible first: invisible is 404)."""
    require_edit(principal, thing, what)


def require_pin(principal: Principal, new: PinMode, old: PinMode | None, what: str) -> None:
    """Forbidden unless the caller may give `what` pin mode `new` (`old`: its mode now, None for a new
    one). Approving changes is an admin's, so only an admin may hold back less than before: lower a
    pin mode, or give a new upstream less than the default."""
    if is_admin(principal) or not lowers_pin(old or DEFAULT_PIN, new):
        return
    if old is None:
        raise Forbidden(
            f"only an admin may register {what} with pin {new!r}: its changes would go live without an "
            f"admin's approval; leave 'pin' out (it is {DEFAULT_PIN!r}) or ask an admin",
            missing="role:admin",
        )
    raise Forbidden(
        f"only an admin may lower the pin mode of {what} ({old!r} to {new!r}): its changes would go live "
        "without an admin's approval",
        missing="role:admin",
    )


async def ownership(
    principal: Principal, body: dict[str, Any], team_exists: TeamExists | None, old: Owned | None = None
) -> dict[str, Any]:
    """`team`, `owner` and `visibility` for a new thing (`old` is None) or a changed one, checked
    against the caller's rights; removes those keys from `body`."""
    given = OWNERSHIP_FIELDS & body.keys()
    team = body.pop("team", old.team if old is not None else _default_team(principal))
    visibility = body.pop("visibility", old.visibility if old is not None else ("team" if team else "private"))
    if team is not None and not isinstance(team, str):
        raise BadRequest("'team' must be a team name, or null")
    if visibility not in VISIBILITIES:
        raise BadRequest(f"'visibility' must be one of: {', '.join(VISIBILITIES)}")
    if visibility == "team" and team is None and ("team" in given or "visibility" in given):
        raise BadRequest("'visibility' team needs a team: say which team owns it ('team')")
    if team is not None and (old is None or team != old.team):
        if is_admin(principal):
            if team_exists is not None and not await team_exists(team):
                raise BadRequest(f"no such team {team!r}")
        elif team not in principal.teams:
            raise Forbidden(f"you are not a member of team {team!r}", missing=f"team:{team}")
    if team is None and not is_admin(principal):
        raise BadRequest("say which of your teams owns it: 'team'")
    owner = old.owner if old is not None else principal.user
    return {"team": team, "owner": owner, "visibility": visibility}


def _default_team(principal: Principal) -> str | None:
    # A developer in exactly one team needs not say which; anyone else must (admins may leave it unset).
    return next(iter(principal.teams)) if len(principal.teams) == 1 and not is_admin(principal) else None
