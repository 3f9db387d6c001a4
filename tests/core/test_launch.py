"""The stdio allow-list rules (core/launch.py): exact leading words, plain trailing arguments only
where an entry opts in with ' *', and the environment deny-list."""

from __future__ import annotations

import pytest

from bastion.core.errors import Forbidden
from bastion.core.launch import check_launch, denied_env, parse_rule, parse_rules
from bastion.core.models import UpstreamSpec

RULES = parse_rules(["/usr/bin/mcp-github", "npx -y @modelcontextprotocol/server-filesystem /srv/data *"])


def _spec(*argv: str, env: dict[str, str] | None = None) -> UpstreamSpec:
    return UpstreamSpec(name="u", transport="stdio", command=argv[0], args=argv[1:], env=env or {})


@pytest.mark.parametrize(
    "argv",
    [
        ("/usr/bin/mcp-github",),
        ("npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data"),
        ("npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data", "/srv/more"),
    ],
)
def test_allowed_command_lines(argv: tuple[str, ...]) -> None:
    check_launch(_spec(*argv), RULES)


@pytest.mark.parametrize(
    "argv",
    [
        ("/usr/bin/mcp-github", "extra"),  # no ' *': nothing may follow
        ("mcp-github",),  # not the exact path
        ("npx", "-y", "@modelcontextprotocol/server-filesystem"),  # fewer words than the entry
        ("npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data", "--eval", "x"),
        ("npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data", "-e"),
        ("npx", "-y", "@evil/pkg", "/srv/data"),
        ("/bin/sh", "-c", "id"),
    ],
)
def test_refused_command_lines(argv: tuple[str, ...]) -> None:
    with pytest.raises(Forbidden):
        check_launch(_spec(*argv), RULES)


def test_http_upstreams_are_not_concerned() -> None:
    check_launch(UpstreamSpec(name="u", transport="streamable-http", url="https://x.example/mcp"), ())


def test_environment_that_changes_what_runs_is_refused_and_credentials_are_not() -> None:
    names = ["GITHUB_TOKEN", "BRAVE_API_KEY", "GOOGLE_API_KEY", "LD_PRELOAD", "node_options", "PYTHONPATH", "PATH", "BAD=NAME", "DYLD_X"]
    assert denied_env(names) == ["LD_PRELOAD", "node_options", "PYTHONPATH", "PATH", "BAD=NAME", "DYLD_X"]


@pytest.mark.parametrize("entry", ["", "*", "npx * -y", "'unclosed"])
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_rule(entry)
