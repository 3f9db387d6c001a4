"""What an API token's grants allow: pure decisions over a request line."""

from __future__ import annotations

import pytest

from bastion.core.errors import Forbidden
from bastion.core.grants import Grants, authorize

MCP_VS1 = Grants(frozenset({"vs1"}), frozenset({"mcp"}))
READ = Grants(frozenset(), frozenset({"read"}))
EVERYTHING = Grants("*", frozenset({"mcp", "read"}))


@pytest.mark.parametrize(
    ("grants", "method", "path"),
    [
        (MCP_VS1, "POST", "/servers/vs1/mcp"),
        (MCP_VS1, "GET", "/servers/vs1/sse"),
        (MCP_VS1, "POST", "/servers/vs1/messages"),
        (EVERYTHING, "POST", "/servers/any/mcp"),
        (READ, "GET", "/api/v1/tools"),
        (READ, "GET", "/api/v1/upstreams/fx"),
        (READ, "HEAD", "/api/v1/servers"),
    ],
)
def test_allowed(grants: Grants, method: str, path: str) -> None:
    authorize(grants, method, path)


@pytest.mark.parametrize(
    ("grants", "method", "path", "missing"),
    [
        (MCP_VS1, "POST", "/servers/vs2/mcp", "server:vs2"),
        (MCP_VS1, "POST", "/servers/", "server:"),
        (READ, "POST", "/servers/vs1/mcp", "permission:mcp"),
        (MCP_VS1, "GET", "/api/v1/tools", "permission:read"),
        (EVERYTHING, "POST", "/api/v1/upstreams", "admin"),
        (EVERYTHING, "PATCH", "/api/v1/tools/x", "admin"),
        (EVERYTHING, "GET", "/api/v1/tokens", "admin"),
        (EVERYTHING, "DELETE", "/api/v1/tokens/x", "admin"),
        (EVERYTHING, "GET", "/api/v1/users", "admin"),
        (EVERYTHING, "GET", "/api/v1//tools", "admin"),
        (EVERYTHING, "GET", "/", "admin"),
    ],
)
def test_refused(grants: Grants, method: str, path: str, missing: str) -> None:
    with pytest.raises(Forbidden) as refused:
        authorize(grants, method, path)
    assert refused.value.extra["missing"] == missing
