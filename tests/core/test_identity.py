"""Pure access decisions: role gate, visibility and edit rights."""

from __future__ import annotations

import pytest

from bastion.core.errors import Forbidden
from bastion.core.identity import authorize_role, can_edit, can_see
from bastion.core.models import UpstreamSpec
from bastion.pipeline.context import Principal

ADMIN = Principal(id="admin", role="admin")
LEGACY_TOKEN = Principal(id="token:1", kind="token")
DEV_A = Principal(id="user:a", kind="user", user="a", teams=frozenset({"alpha"}), role="developer")
DEV_B = Principal(id="user:b", kind="user", user="b", teams=frozenset({"beta"}), role="developer")
VIEWER_A = Principal(id="user:v", kind="user", user="v", teams=frozenset({"alpha"}), role="viewer")


def spec(visibility: str, team: str | None = "alpha", owner: str | None = "a") -> UpstreamSpec:
    return UpstreamSpec(name="fx", transport="stdio", command="x", team=team, owner=owner, visibility=visibility)  # type: ignore[arg-type]


def test_visibility_levels() -> None:
    private, team, public = spec("private"), spec("team"), spec("public")
    assert can_see(DEV_A, private) and not can_see(VIEWER_A, private) and not can_see(DEV_B, private)
    assert can_see(VIEWER_A, team) and not can_see(DEV_B, team)
    assert can_see(DEV_B, public)
    assert all(can_see(p, private) for p in (ADMIN, LEGACY_TOKEN))
    assert not can_see(DEV_A, spec("private", owner=None))


def test_only_admins_and_owning_developers_edit() -> None:
    team = spec("team")
    assert can_edit(ADMIN, team) and can_edit(DEV_A, team)
    assert not can_edit(VIEWER_A, team) and not can_edit(DEV_B, spec("public")) and not can_edit(LEGACY_TOKEN, team)


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("viewer", "GET", "/api/v1/tools", True),
        ("viewer", "GET", "/api/v1/upstreams/fx", True),
        ("viewer", "POST", "/api/v1/upstreams", False),
        ("viewer", "PATCH", "/api/v1/tools/fx__echo", False),
        ("viewer", "POST", "/servers/vs/mcp", False),
        ("viewer", "POST", "/api/v1/tokens", True),
        ("viewer", "POST", "/api/v1/auth/logout", True),
        ("viewer", "GET", "/api/v1/users", False),
        ("developer", "POST", "/api/v1/upstreams", True),
        ("developer", "DELETE", "/api/v1/servers/vs", True),
        ("developer", "POST", "/servers/vs/mcp", True),
        ("developer", "POST", "/api/v1/users", False),
        ("developer", "POST", "/api/v1/teams", False),
        ("developer", "GET", "/api/v1/teams", True),
        ("developer", "GET", "/metrics-or-anything-else", False),
        ("admin", "DELETE", "/api/v1/users/x", True),
    ],
)
def test_role_gate_denies_by_default(role: str, method: str, path: str, allowed: bool) -> None:
    if allowed:
        authorize_role(role, method, path)  # type: ignore[arg-type]
    else:
        with pytest.raises(Forbidden):
            authorize_role(role, method, path)  # type: ignore[arg-type]
