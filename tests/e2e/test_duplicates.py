"""Duplicate tools across two real upstreams: the fixture, and a copycat that re-implements two of its tools."""

from __future__ import annotations

import json
import sys

import anyio
import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.harness import ROOT, TOKEN, Running, stdio_fixture

pytestmark = pytest.mark.anyio
COPYCAT = {"name": "copycat", "transport": "stdio", "command": sys.executable, "args": [str(ROOT / "tests/upstreams/copycat_server.py")]}


async def test_a_new_upstream_is_told_which_tools_already_exist_and_the_catalog_lists_the_groups(gateway: Running) -> None:
    first = await gateway.register(stdio_fixture("fx"))
    assert first["duplicates"] == []
    created = await gateway.register(COPYCAT)
    told = {(d["tool"], d["duplicates"]) for d in created["duplicates"]}
    assert told == {("copycat__repeat_text", "fx__echo"), ("copycat__add_numbers", "fx__add")}
    assert all(d["score"] >= 0.6 and "alike" in d["reason"] for d in created["duplicates"])

    groups = (await gateway.api.get("/api/v1/catalog/duplicates")).json()["groups"]
    assert sorted(tuple(g["tools"]) for g in groups) == [("copycat__add_numbers", "fx__add"), ("copycat__repeat_text", "fx__echo")]
    assert all(g["upstreams"] == ["copycat", "fx"] for g in groups)
    echo = next(g for g in groups if "fx__echo" in g["tools"])
    assert "input schemas share text" in echo["reason"]
    assert "weather" not in json.dumps(groups)

    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost"}
    shown = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, ["tools", "duplicates"], env=env))
    assert shown.exit_code == 0, shown.output
    assert "copycat__repeat_text, fx__echo" in shown.output
