"""Users, teams and who may see or change what: data and pure access decisions, no I/O.

Roles: `admin` may do everything; `developer` may register and edit upstreams and virtual servers
owned by their teams; `viewer` reads. Visibility of an owned thing: `private` (its owner and
admins), `team` (members of its owning team), `public` (every signed-in user).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from bastion.core.errors import Forbidden
from bastion.core.grants import used_server
from bastion.core.models import Frozen, Visibility

Role = Literal["admin", "developer", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "developer", "viewer")
MAX_EMAIL = 254

_READ_METHODS = frozenset({"GET", "HEAD"})
# What any signed-in user may do on their own session, whatever their role.
_SELF_SERVICE = frozenset({"/api/v1/auth/me", "/api/v1/auth/logout"})
_CATALOG = frozenset(
    {"tools", "prompts", "resources", "servers", "upstreams", "openapi.json", "docs", "approvals", "registries", "catalog"}
)
_DEVELOPER_WRITES = frozenset({"tools", "prompts", "resources", "servers", "upstreams", "registries"})
# Bastion's own MCP Registry API (v0.1): lists only the virtual servers the caller may use.
_REGISTRY_API = "/v0.1/servers"


class User(Frozen):
    """A person who signs in. Never carries the password or its hash."""

    id: str
    email: str
    role: Role
    active: bool = True
    teams: tuple[str, ...] = ()
    created_at: datetime


class Team(Frozen):
    name: str
    members: tuple[str, ...] = ()
    created_at: datetime


class Actor(Protocol):
    """Whose authority a request carries (satisfied by `pipeline.context.Principal`)."""

    @property
    def user(self) -> str | None: ...
    @property
    def teams(self) -> frozenset[str]: ...
    @property
    def role(self) -> Role | None: ...


class Owned(Protocol):
    """Something a team owns: an upstream or a virtual server spec."""

    @property
    def team(self) -> str | None: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def visibility(self) -> Visibility: ...


def normalize_email(email: str) -> str:
    """Emails are unique regardless of case: stored and compared lower-cased and trimmed."""
    return email.strip().lower()


def is_admin(actor: Actor) -> bool:
    return actor.role == "admin"


def can_see(actor: Actor, thing: Owned) -> bool:
    """Whether `actor` may know that `thing` exists (invisible things answer 404, not 403).

    An actor without a user and role (the legacy admin-made API tokens) is limited by its grants alone."""
    if actor.role is None and actor.user is None:
        return True
    if is_admin(actor) or thing.visibility == "public":
        return True
    if thing.visibility == "team":
        return thing.team is not None and thing.team in actor.teams
    return thing.owner is not None and thing.owner == actor.user


def sees_everyone(actor: Actor) -> bool:
    """Whether `actor` may know of every user, team and API token: admins, and the legacy
    admin-made API tokens (no user, no role)."""
    return is_admin(actor) or (actor.role is None and actor.user is None)


def can_see_user(actor: Actor, user: User) -> bool:
    """Whether `actor` may know that `user` exists: themselves and the members of their own teams
    (what their teams' pages show them); admins see everyone."""
    return sees_everyone(actor) or user.id == actor.user or not actor.teams.isdisjoint(user.teams)


def can_edit(actor: Actor, thing: Owned) -> bool:
    """Admins edit everything; developers what their teams own and they can see."""
    if is_admin(actor):
        return True
    return actor.role == "developer" and thing.team in actor.teams and can_see(actor, thing)


def require_edit(actor: Actor, thing: Owned, what: str) -> None:
    """Raise Forbidden unless `actor` may change `thing` (call after checking it is visible)."""
    if not can_edit(actor, thing):
        raise Forbidden(f"you may not change {what}: it belongs to another team", missing="team")


def authorize_mcp(role: Role) -> None:
    """Raise Forbidden unless a user with `role` may use virtual servers' MCP endpoints."""
    if role not in ("admin", "developer"):
        raise Forbidden("viewers may not use virtual servers' MCP endpoints", missing="role:developer")


def authorize_role(role: Role, method: str, path: str) -> None:
    """Raise Forbidden unless a user with `role` may call `method path` at all (deny by default).

    This is the coarse gate; ownership and visibility are checked where the objects are."""
    if role == "admin":
        return
    parts = path.split("/")  # ['', 'servers', name, ...] or ['', 'api', 'v1', collection, ...]
    if used_server(path) is not None:
        authorize_mcp(role)
        return
    collection = parts[3] if parts[1:3] == ["api", "v1"] and len(parts) > 3 else None
    # Everyone manages their own session and API tokens (a token never exceeds its user's rights).
    if path in _SELF_SERVICE or collection == "tokens":
        return
    # Everyone lists and ends their own OAuth grants; the route refuses anyone else's.
    if collection == "users" and method in ("GET", "DELETE") and len(parts) in (6, 7) and parts[5] == "grants":
        return
    if method in _READ_METHODS and (path == _REGISTRY_API or path.startswith(_REGISTRY_API + "/")):
        return
    if method in _READ_METHODS:
        if collection in _CATALOG or collection == "teams":
            return
        raise Forbidden(f"a {role} may not access {path}", missing="role:admin")
    if role == "developer" and collection in _DEVELOPER_WRITES:
        return
    raise Forbidden(f"a {role} may not change this", missing="role:admin" if role == "developer" else "role:developer")
