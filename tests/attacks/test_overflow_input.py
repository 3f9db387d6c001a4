"""Attack class: numbers past what the calendar, a float or a database integer holds, from a caller,
an operator or another party (a token endpoint, a registry). Each is refused with a clear 4xx, or read
as what it can only mean, never a 500, a crashed background task or a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.config import CENTURY
from tests.attacks.test_registry_fields import FakeRegistry, _set
from tests.harness import Running, serve, serve_asgi, settings_for
from tests.identity import login, make_user
from tests.vault.test_upstream_user_oauth import connect, provider, setup, whoami

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("lifetime", [10**400, float("inf")], ids=["past-float", "infinity"])
async def test_a_token_endpoints_endless_lifetime_connects_the_account(gateway: Running, lifetime: float) -> None:
    """RFC 6749's `expires_in` past what a float holds (or JSON's Infinity) is a token that does not
    say when it expires, not a 500 on the callback page."""
    async with provider(gateway, expires_in=lifetime) as (_world, base):
        alice = (await setup(gateway, base))["alice"]
        await connect(gateway, alice, "alice-gh")
        assert (await whoami(gateway, alice))["x-account"] == "alice-gh"


def _openapi_document(maximum: str) -> str:
    """An upstream registration whose inline OpenAPI document bounds a parameter by `maximum`, as text."""
    parameter = {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": "MAXIMUM"}}
    operation = {"operationId": "listItems", "parameters": [parameter], "responses": {"200": {"description": "ok"}}}
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/items": {"get": operation}}}
    body = {"name": "api", "transport": "openapi", "base_url": "http://127.0.0.1:9/v1", "spec": spec}
    return json.dumps(body).replace('"MAXIMUM"', maximum)


@pytest.mark.parametrize("maximum", ["1e400", "-1E+999", "Infinity", "NaN", "2" + "0" * 308 + ".5", "1" + "0" * 300 + "e9"])
async def test_a_body_number_no_json_column_holds_is_a_400(gateway: Running, maximum: str) -> None:
    """json.loads reads these as NaN or an infinity, which JSON text cannot spell: PostgreSQL's JSON
    column refused the catalog row (a 500). Refused where the body is read, naming the field."""
    response = await gateway.api.post(
        "/api/v1/upstreams", content=_openapi_document(maximum), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "spec.paths./items.get.parameters.0.schema.maximum" in response.json()["detail"]


async def test_a_body_number_a_float_holds_is_still_taken(gateway: Running) -> None:
    response = await gateway.api.post(
        "/api/v1/upstreams", content=_openapi_document("1.5e308"), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


CONFIG = (
    "teams:\n  - name: t-endless\nupstreams:\n  - name: api\n    transport: openapi\n    openapi:\n"
    "      base_url: http://127.0.0.1:9/v1\n      spec:\n        openapi: 3.0.3\n        info: {title: t, version: '1'}\n"
    "        paths:\n          /items:\n            get:\n              operationId: listItems\n"
    "              parameters: [{name: limit, in: query, schema: {type: integer, maximum: MAXIMUM}}]\n"
    "              responses: {'200': {description: ok}}\n"
)


@pytest.mark.parametrize("maximum", [".inf", "-.Inf", ".NaN", "1.0e+400"])
async def test_a_configuration_number_no_json_column_holds_is_a_400_and_changes_nothing(gateway: Running, maximum: str) -> None:
    """YAML's .inf and .nan (and 1.0e+400) were stored as far as the catalog, which PostgreSQL refused:
    the import answered 500. Refused where the document is read, naming where."""
    response = await gateway.api.post("/api/v1/config", content=CONFIG.replace("MAXIMUM", maximum).encode())
    assert response.status_code == 400, response.text
    assert "upstreams.0.openapi.spec.paths./items.get.parameters.0.schema.maximum" in response.json()["detail"]
    assert (await gateway.api.get("/api/v1/teams/t-endless")).status_code == 404
    assert (await gateway.api.get("/api/v1/upstreams/api")).status_code == 404


async def test_a_configuration_number_a_float_holds_is_still_imported(gateway: Running) -> None:
    response = await gateway.api.post("/api/v1/config", content=CONFIG.replace("MAXIMUM", "1.5e+308").encode())
    assert response.status_code == 200, response.text


class _EndlessRegistry(FakeRegistry):
    """Lists its first entry with a number no float holds (`text`): JSONResponse would refuse to write one."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.change = _set("server.repository.stars", "ENDLESS")
        self.text = text

    def app(self) -> Starlette:
        async def list_servers(request: Request) -> Response:
            body = json.dumps(self.page()).replace('"ENDLESS"', self.text)
            return Response(body, media_type="application/json")

        return Starlette(routes=[Route("/v0.1/servers", list_servers)])


@pytest.mark.parametrize("text", ["1e400", "-Infinity", "NaN"])
async def test_a_registry_entry_number_no_json_column_holds_is_refused(gateway: Running, text: str) -> None:
    """The registry cache refused the row on PostgreSQL: adding the source answered 500."""
    async with serve_asgi(_EndlessRegistry(text).app()) as url:
        refused = await gateway.api.post("/api/v1/registries", json={"name": "endless", "url": url})
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert "registry source 'endless'" in detail and "repository.stars" in detail, detail
    assert (await gateway.api.get("/api/v1/registries/endless")).status_code == 404


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("session_ttl", 1e12), ("session_ttl", float("inf")), ("oauth_refresh_token_ttl", 1e300),
        ("oauth_consent_ttl", 1e12), ("oauth_client_unused_ttl", 1e12), ("oauth_client_idle_ttl", 1e12),
        ("oauth_key_rotation", 1e12), ("audit_retention_days", 1e9), ("usage_retention_minute_days", 1e9),
        ("usage_retention_hour_days", 1e9), ("usage_retention_day_days", float("inf")),
    ],
)
def test_a_lifetime_past_the_calendar_is_refused_at_start(name: str, value: float) -> None:
    """Taken, BASTION_SESSION_TTL=1e12 made every sign-in a 500 (now + 31,700 years is past year
    9999), and a retention of 1e9 days killed the pruning task: refused with the other settings."""
    with pytest.raises(ValidationError, match=name):
        settings_for("sqlite+aiosqlite:///unused.db", **{name: value})


async def test_a_century_long_session_still_signs_in(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", session_ttl=CENTURY)) as gateway:
        await make_user(gateway, "century@example.com", "developer")
        assert (await login(gateway, "century@example.com")).status_code == 200
