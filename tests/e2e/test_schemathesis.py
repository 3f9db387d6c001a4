"""Bastion's own OpenAPI document is complete and valid, and schemathesis, fuzzing a running Bastion
against it and against a per-server facade document, finds no 5xx and no response that breaks
its schema. Examples are bounded to keep this quick."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from tests.harness import TOKEN, Running, serve, settings_for, stdio_fixture

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Operations that would reach out to URLs or start processes named by fuzzed input (no traffic off
# this machine, no arbitrary commands), or lock the admin out of signing in (a configuration import
# registers upstreams too, and may prune everything).
EXCLUDED = (
    "post_upstreams", "patch_upstreams_name", "post_upstreams_name_connect", "post_upstreams_name_refresh", "post_auth_login",
    "post_config",
)


async def fuzz(gateway: Running, document: dict[str, object], tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    excluded = [arg for op in EXCLUDED for arg in ("--exclude-operation-id", op)]
    command = [
        str(SCHEMATHESIS), "run", str(path), "--url", gateway.base_url, "-H", f"Authorization: Bearer {TOKEN}",
        "--max-examples", "4", "--phases", "examples,fuzzing", "--workers", "1", "--seed", "1",
        "--checks", "not_a_server_error,response_schema_conformance", "--request-timeout", "30", *excluded,
    ]
    with anyio.fail_after(240):
        result = await anyio.run_process(command, check=False, cwd=tmp_path)  # its report dir goes there
    output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, output[-6000:]


async def test_the_admin_document_lists_every_route_and_is_valid(gateway: Running) -> None:
    document = (await gateway.api.get("/api/v1/openapi.json")).json()
    validate(document)
    rest = getattr(gateway.bastion.app.rest, "routed", None)  # behind the facade's fast path (facade_fast)
    routes = [r for r in getattr(rest, "routes", []) if isinstance(r, Route) and r.path.startswith("/api/v1/")]
    assert len(routes) > 40
    for route in routes:
        path = route.path.replace(":int", "")
        for method in (route.methods or set()) - {"HEAD"}:
            assert method.lower() in document["paths"].get(path, {}), f"{method} {path} is not documented"
    assert document["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    page = await gateway.api.get("/api/v1/docs")
    assert page.status_code == 200 and "/api/v1/upstreams" in page.text


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed")
async def test_schemathesis_finds_no_server_errors_or_schema_violations(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "tools": ["fx__echo", "fx__add"]})
        admin = (await gateway.api.get("/api/v1/openapi.json")).json()
        server = (await gateway.api.get("/api/v1/servers/vs/openapi.json")).json()
        await fuzz(gateway, server, tmp_path, "server")
        await fuzz(gateway, admin, tmp_path, "admin")
