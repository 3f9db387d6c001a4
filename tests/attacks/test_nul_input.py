"""Attack class: a NUL character in what a caller sends. PostgreSQL can neither store nor compare
one in text (`invalid byte sequence for encoding "UTF8": 0x00`), so on PostgreSQL:
- a route that looked a path segment up answered 500 (`GET /api/v1/users/%00`): a path holding a
  NUL is now refused before any route runs;
- a JSON body with `\u0000` in a field bound for a text column answered 500 (a user's email, a
  token's name, a server's description, a sign-in): a REST write's body holding one is now a 400;
- the authorization server looked a client id (/token, /revoke, /authorize), a consent request or a
  consent form's email up as sent (500): a lookup by a key holding a NUL now finds nothing, so each
  answers as for an unknown client, request or user;
- a configuration import holding one (a YAML escape, JSON's, !!binary) failed at the step storing it,
  and kept the steps before it (500): the document is now refused whole (400), and a step failing
  with any error takes back the steps before it.
Tool arguments may hold one (they go to the upstream, never into a column), and still do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2
import pytest

from tests import harness
from tests.auth.oauth_client import REDIRECT_URI, Browser, Pkce, authorize_url, hidden_fields, register, serve_public
from tests.harness import TOKEN, Running, postgres_database, serve, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("nul-paths")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"]})
        yield running


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/users/%00"),
        ("GET", "/api/v1/teams/a%00"),
        ("GET", "/api/v1/upstreams/%00"),
        ("DELETE", "/api/v1/upstreams/%00"),
        ("GET", "/api/v1/servers/%00"),
        ("PATCH", "/api/v1/servers/%00"),
        ("GET", "/api/v1/tokens/%00"),
        ("DELETE", "/api/v1/tokens/%00"),
        ("POST", "/api/v1/servers/vs/tools/fx__echo%00"),
        ("POST", "/servers/%00/mcp"),
        ("GET", "/admin/upstreams/%00"),
    ],
)
async def test_a_nul_in_the_path_is_a_400(gateway: Running, method: str, path: str) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.request(method, path, headers={"authorization": f"Bearer {TOKEN}"}, json={})
    assert response.status_code == 400, (path, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "NUL" in response.json()["detail"]
    # The gateway still serves its routes afterwards.
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        assert (await http.get("/api/v1/servers/vs", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200


NUL = "a\u0000b"
WRITES = [
    ("POST", "/api/v1/users", {"email": "x\u0000@example.com", "password": "correct horse battery staple 1", "role": "viewer"}),
    ("POST", "/api/v1/tokens", {"name": NUL, "servers": ["vs"]}),
    ("POST", "/api/v1/servers", {"name": "s2", "description": NUL, "upstreams": ["fx"]}),
    ("PATCH", "/api/v1/servers/vs", {"description": NUL}),
    ("POST", "/api/v1/auth/login", {"email": "a\u0000@example.com", "password": "whatever it is"}),
    ("POST", "/api/v1/upstreams", {"name": "u2", "transport": "stdio", "command": "x", "env": {"K": NUL}}),
    # Nested (a policy is stored as JSON text, where it did fit: refused all the same).
    ("PATCH", "/api/v1/servers/vs", {"policy": {"default": "allow", "rules": [{"effect": "deny", "tools": [NUL]}]}}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(WRITES)])
async def test_a_nul_in_a_rest_body_is_a_400(gateway: Running, method: str, path: str, body: dict[str, object]) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.request(method, path, headers={"authorization": f"Bearer {TOKEN}"}, json=body)
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "NUL" in response.json()["detail"]
        served = await http.get("/api/v1/servers/vs", headers={"authorization": f"Bearer {TOKEN}"})
    assert served.status_code == 200 and "\u0000" not in served.text


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(gateway: Running) -> None:
    # The JSON text `"a\\u0000b"` is a, a backslash, then u0000b: no NUL.
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.patch(
            "/api/v1/servers/vs",
            content=b'{"description": "a\\\\u0000b"}',
            headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "a\\u0000b"


async def test_tool_arguments_may_hold_a_nul(gateway: Running) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        response = await http.post(
            "/api/v1/servers/vs/tools/fx__echo", headers={"authorization": f"Bearer {TOKEN}"}, json={"text": NUL}
        )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == NUL


# -- the authorization server: forms and query strings that no login guards ----------------------


@pytest.fixture(scope="module")
async def public(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """Bastion at a known public URL (its authorization server's issuer), on PostgreSQL in that mode."""
    async with AsyncExitStack() as stack:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('nul-oauth')}/b.db"
        if harness.TEST_DATABASE == "postgres":
            url = await stack.enter_async_context(postgres_database())
        running = await stack.enter_async_context(serve_public(url))
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        yield running


TOKEN_FORM = {"grant_type": "authorization_code", "code": "c", "redirect_uri": REDIRECT_URI, "code_verifier": "v" * 43}


@pytest.mark.parametrize("client_id", ["\u0000", "a\u0000b"])
@pytest.mark.parametrize("endpoint", ["/token", "/revoke"])
async def test_a_nul_in_a_client_id_is_an_unknown_client(public: Running, endpoint: str, client_id: str) -> None:
    form = {"client_id": client_id, "client_secret": "s", **TOKEN_FORM, "token": "t"}
    async with httpx2.AsyncClient(base_url=public.base_url, timeout=30) as http:
        response = await http.post(endpoint, data=form)
    assert response.status_code in (400, 401), (response.status_code, response.text)
    assert response.json()["error"] in ("invalid_client", "unauthorized_client"), response.text


@pytest.mark.parametrize("client_id", ["\u0000", "a\u0000b"])
async def test_a_nul_in_an_authorize_client_id_is_an_unknown_client(public: Running, client_id: str) -> None:
    url = authorize_url(public, {"client_id": client_id}, "vs", Pkce())
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.get(url)
    assert response.status_code == 400, (response.status_code, response.text)


async def test_a_nul_in_the_consent_request_is_an_unknown_request(public: Running) -> None:
    async with httpx2.AsyncClient(base_url=public.base_url, timeout=30) as http:
        shown = await http.get("/oauth/consent", params={"request": "a\u0000b"})
        posted = await http.post("/oauth/consent", data={"request": "a\u0000b", "csrf": "x", "action": "allow"})
    for response in (shown, posted):
        assert response.status_code == 400, (response.status_code, response.text)
        assert "unknown or has expired" in response.text


async def test_a_nul_in_the_consent_email_is_a_wrong_login(public: Running) -> None:
    client = await register(public)
    async with httpx2.AsyncClient(timeout=30) as http:
        consent_url, page = await Browser("nobody@example.com").open_consent(http, authorize_url(public, client, "vs", Pkce()))
        form = {**hidden_fields(page.text), "email": "a\u0000@example.com", "password": "whatever it is", "action": "allow"}
        response = await http.post(consent_url.split("?")[0], data=form)
    assert response.status_code == 401, (response.status_code, response.text)
    assert "Wrong email or password" in response.text


# -- configuration import: its body is a YAML (or JSON) document, not read as a REST write's JSON --

CONFIGS = [
    # YAML's escapes (\0, \x00, \u0000), JSON's, a NUL in a key, and a !!binary string (no escape at all).
    ("yaml", b'teams:\n  - name: t-yaml\nservers:\n  - name: s-nul\n    upstreams: [fx]\n    description: "x\\0"\n', "servers.0.description"),
    ("yaml-x", b'teams:\n  - name: t-yaml-x\nservers:\n  - {name: s-nul, upstreams: [fx], description: "x\\x00"}\n', "servers.0.description"),
    ("json", b'{"teams": [{"name": "t-json"}], "servers": [{"name": "s-nul", "upstreams": ["fx"], "description": "x\\u0000"}]}', "servers.0.description"),
    ("key", b'teams:\n  - name: t-key\nservers:\n  - name: s-nul\n    upstreams: [fx]\n    transforms: {"a\\0": {}}\n', "servers.0.transforms"),
    ("binary", b"teams:\n  - name: t-binary\nservers:\n  - name: s-nul\n    upstreams: [fx]\n    description: !!binary eAA=\n", "servers.0.description"),
]


@pytest.mark.parametrize(("team", "body", "where"), [(f"t-{k}", b, w) for k, b, w in CONFIGS], ids=[c[0] for c in CONFIGS])
async def test_a_nul_in_a_configuration_is_a_400_and_changes_nothing(gateway: Running, team: str, body: bytes, where: str) -> None:
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        auth = {"authorization": f"Bearer {TOKEN}"}
        response = await http.post("/api/v1/config", content=body, headers=auth)
        assert response.status_code == 400, (response.status_code, response.text)
        assert "NUL" in response.json()["detail"] and where in response.json()["detail"], response.text
        assert (await http.get(f"/api/v1/teams/{team}", headers=auth)).status_code == 404
        assert (await http.get("/api/v1/servers/s-nul", headers=auth)).status_code == 404


async def test_an_import_step_failing_unexpectedly_takes_back_the_steps_before_it(
    gateway: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only a BastionError: a database refusing a row (as PostgreSQL a NUL) is an unexpected error."""
    assert gateway.bastion.config is not None

    async def refused(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database refused the row")

    monkeypatch.setattr(gateway.bastion.config.gateway, "save_server", refused)
    body = b"teams:\n  - name: t-undone\nservers:\n  - name: s-undone\n    upstreams: [fx]\n"
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        auth = {"authorization": f"Bearer {TOKEN}"}
        response = await http.post("/api/v1/config", content=body, headers=auth)
        assert response.status_code == 500, (response.status_code, response.text)
        assert (await http.get("/api/v1/teams/t-undone", headers=auth)).status_code == 404
