"""server.json documents to upstreams (core/registry.py) and listing merges (core/registry_listing.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.core.errors import BadRequest
from bastion.core.models import RegistryOrigin
from bastion.core.registry import check_server, plan_install, requirements
from bastion.core.registry_listing import RegistryEntry, entries_from_page, merge, search

DOCS = Path(__file__).parents[1] / "upstreams" / "registry"
ORIGIN = RegistryOrigin(source="acme", server="x/y", version="1")


def doc(name: str) -> dict[str, Any]:
    return json.loads((DOCS / name).read_text().replace("{FIXTURE_URL}", "https://fixture.example/mcp"))


def test_an_npm_package_runs_with_npx_and_its_declared_arguments() -> None:
    plan = plan_install(doc("npm-everything.json"), upstream="ev", origin=ORIGIN, values={"EVERYTHING_TOKEN": "t"})
    spec = plan.spec
    assert (spec.transport, spec.command, spec.args) == ("stdio", "npx", ("-y", "@modelcontextprotocol/server-everything@2025.9.25", "stdio"))
    assert spec.env == {"EVERYTHING_TOKEN": "t"} and spec.origin == ORIGIN


def test_a_pypi_package_runs_with_uvx_and_defaults_fill_optional_variables() -> None:
    spec = plan_install(doc("pypi-weather.json"), upstream="w", origin=ORIGIN, values={"WEATHER_API_KEY": "k"}).spec
    assert (spec.command, spec.args) == ("uvx", ("weather-mcp-server==0.5.0",))
    assert spec.env == {"WEATHER_API_KEY": "k", "WEATHER_UNITS": "celsius"}


def test_an_oci_package_runs_with_docker_forwarding_its_variables() -> None:
    values = {"DB_USERNAME": "u", "DB_PASSWORD": "p", "database_name": "prod"}
    spec = plan_install(doc("oci-database.json"), upstream="db", origin=ORIGIN, values=values).spec
    assert spec.command == "docker"
    assert spec.args == (
        "run", "-i", "--rm", "--network", "host", "-e", "DB_USERNAME", "-e", "DB_PASSWORD",
        "docker.io/example/database-manager-mcp:3.1.0", "--host", "localhost", "prod",
    )


def test_missing_required_values_are_named_without_values_and_unknown_ones_refused() -> None:
    with pytest.raises(BadRequest) as missing:
        plan_install(doc("oci-database.json"), upstream="db", origin=ORIGIN, values={"DB_USERNAME": "u"})
    assert "env DB_PASSWORD" in missing.value.detail and "argument database_name" in missing.value.detail
    with pytest.raises(BadRequest, match="no input named NOPE"):
        plan_install(doc("pypi-weather.json"), upstream="w", origin=ORIGIN, values={"NOPE": "x", "WEATHER_API_KEY": "k"})
    secret = {r.name for r in requirements(doc("pypi-weather.json")) if r.secret}
    assert secret == {"WEATHER_API_KEY"}


def test_a_remote_prefers_streamable_http_and_package_only_entries_refuse_remote() -> None:
    spec = plan_install(doc("remote-1.0.0.json"), upstream="r", origin=ORIGIN, values={"X-Api-Key": "k"}).spec
    assert (spec.transport, spec.url, spec.headers) == ("streamable-http", "https://fixture.example/mcp", {"X-Api-Key": "k", "X-Region": "eu-west-1"})
    with pytest.raises(BadRequest, match="no a streamable-http or sse remote"):
        plan_install(doc("pypi-weather.json"), upstream="w", origin=ORIGIN, values={}, prefer="remote")


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ([], "must be a JSON object"),
        ({"name": "noslash", "version": "1", "description": "d"}, "'name'"),
        ({"name": "a/b", "version": "latest", "description": "d"}, "not 'latest'"),
        ({"name": "a/b", "version": "1", "description": "d", "packages": [{"registryType": "npm"}]}, "identifier"),
        ({"name": "a/b", "version": "1", "description": "d", "remotes": [{"type": "ws", "url": "x"}]}, "remotes[0].type"),
        ({"name": "a/b", "version": "1", "description": "d", "remotes": [{"type": "sse", "url": "ftp://x"}]}, "url"),
    ],
)
def test_malformed_documents_are_refused_with_the_reason(broken: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_server(broken)


def test_merging_keeps_one_latest_per_server_and_search_ranks_name_hits_first() -> None:
    page = {"servers": [{"server": doc("remote-1.0.0.json"), "_meta": {}}], "metadata": {"nextCursor": "2"}}
    old, cursor = entries_from_page("acme", page, "test")
    assert cursor == "2"
    newer = RegistryEntry(source="acme", name=old[0].name, version="1.10.0", latest=False, document={**old[0].document, "version": "1.10.0"})
    merged = merge(old, [newer])
    assert [(e.version, e.latest) for e in merged] == [("1.0.0", False), ("1.10.0", True)]
    weather = entries_from_page("acme", {"servers": [{"server": doc("pypi-weather.json")}]}, "t")[0]
    assert [e.name for e in search([*merged, *merge([], weather)], "fixture")] == [old[0].name]
    assert search(merged, "hosted") == [merged[1]]
