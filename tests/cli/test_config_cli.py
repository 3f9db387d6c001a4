"""`bastion export` and `bastion import` against a real gateway: secrets as references, the plan as a
readable diff, references resolved from the CLI's environment, a bad file refused before sending."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import yaml
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from tests.harness import TOKEN, HttpUpstream, Running, http_fixture

pytestmark = pytest.mark.anyio
HEADER_VAR = "BASTION_SECRET_REMOTE_HEADER_X_API_KEY"


@pytest.fixture
def upstream() -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http") as running:
        yield running


async def run(gateway: Running, *args: str, **env: str) -> Result:
    full = {"NO_PROXY": "127.0.0.1,localhost", "BASTION_URL": gateway.base_url, "BASTION_TOKEN": TOKEN, **env}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), env=full))


async def test_export_then_import_with_dry_run_and_a_rotated_secret(
    gateway: Running, upstream: HttpUpstream, tmp_path: Path
) -> None:
    await gateway.register({**upstream.body("remote"), "headers": {"X-Api-Key": "the-secret"}})
    await gateway.create_server({"name": "vs", "upstreams": ["remote"]})
    file = tmp_path / "bastion.yaml"
    exported = await run(gateway, "export", "--output", str(file))
    assert exported.exit_code == 0, exported.output
    text = file.read_text()
    assert "the-secret" not in text and "${" + HEADER_VAR + "}" in text
    assert (await run(gateway, "export")).stdout == text

    same = await run(gateway, "import", str(file))
    assert same.exit_code == 0 and "Nothing to change" in same.output

    document = yaml.safe_load(text)
    document["teams"] = [{"name": "ops"}]
    file.write_text(yaml.safe_dump(document))
    dry = await run(gateway, "import", str(file), "--dry-run")
    assert dry.exit_code == 0 and "+ team ops" in dry.stdout and "dry run" in dry.output
    assert (await gateway.api.get("/api/v1/teams")).json()["items"] == []

    rotated = await run(gateway, "import", str(file), "--json", **{HEADER_VAR: "rotated"})
    assert rotated.exit_code == 0, rotated.output
    assert [a["line"] for a in json.loads(rotated.stdout)["actions"]] == ["+ team ops", "~ upstream remote (headers)"]
    assert gateway.bastion.gateway.snapshot.upstreams["remote"].spec.headers == {"X-Api-Key": "rotated"}

    file.write_text("servers:\n  - name: vs\n    colour: red\n")
    bad = await run(gateway, "import", str(file))
    assert bad.exit_code == 1 and "servers.0.colour" in bad.stderr
