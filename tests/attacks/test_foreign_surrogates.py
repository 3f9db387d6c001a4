"""Attack class: a lone UTF-16 surrogate (`"\\ud800"`, or its UTF-8 bytes ED A0 80, which json.loads
decodes with surrogatepass) in JSON that other parties than upstream MCP servers answer Bastion with:
an upstream's OAuth token endpoint, an OpenID Connect provider (discovery, token endpoint, keys), an
MCP Registry (its API or a file of server.json documents), an OAuth client's metadata document. UTF-8
cannot encode what json.loads makes of it, so a token with one breaks the vault or a header, a
registry entry with one breaks the database, and a client's name with one breaks the consent page.
Each is refused where it is parsed, as the malformed answer of that party it is: a clear error that
names the party, never a 500, never the surrogate itself."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.core.errors import UpstreamUnavailable
from bastion.core.models import OAuthUserGrant
from bastion.core.surrogates import surrogate_in
from bastion.upstream.user_oauth import token_request
from tests.auth import oauth_client
from tests.auth.fake_oidc import FakeProvider
from tests.auth.oauth_client import REDIRECT_URI, Pkce, authorize_url, hidden_fields, serve_public
from tests.auth.test_oauth_server import DEV, populate
from tests.auth.test_oidc import IdentityProvider
from tests.auth.test_oidc import Setup as VerifierSetup
from tests.auth.test_oidc_signin import Setup as SignInSetup
from tests.auth.test_oidc_signin import _error, _gateway_settings, _signed_in
from tests.harness import Running, http_fixture, serve, serve_asgi, settings_for
from tests.identity import PASSWORD
from tests.upstreams.registry_server import load_documents, registry_app
from tests.vault.test_upstream_oauth import CLIENT_SECRET, oauth_body, oauth_world

pytestmark = pytest.mark.anyio

LONE = "evil \ud800 text"
FORMS = ["escaped", "encoded"]
"""How the surrogate is sent: as JSON's escape `\\ud800`, or as the bytes ED A0 80 (UTF-8's form of it)."""


def tampered(app: ASGIApp, path: str, change: Callable[[Any], Any], form: str) -> ASGIApp:
    """`app`, except that its JSON answer at `path` is parsed, changed by `change` (which may add a lone
    surrogate) and sent in `form`: a real party's answer, as one that means harm would send it."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != path:
            return await app(scope, receive, send)
        sent: list[Message] = []

        async def keep(message: Message) -> None:
            sent.append(message)

        await app(scope, receive, keep)
        start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
        value = change(json.loads(body))
        raw = json.dumps(value, ensure_ascii=form == "escaped").encode("utf-8", "surrogatepass")
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})

    return wrapped


def _no_surrogate(response: httpx2.Response) -> None:
    """The answer is text a strict parser reads (no surrogate, encoded or escaped), and no crash."""
    text = response.content.decode()  # strict UTF-8: no encoded surrogate
    if "json" in response.headers.get("content-type", ""):
        assert surrogate_in(json.loads(text)) is None, text
    assert "&#55296;" not in text and "&#xd800;" not in text.lower(), text
    assert "Traceback" not in text and "internal error" not in text.lower(), text


# ---- an upstream's OAuth token endpoint (client credentials; per-user code exchange and refresh)


@pytest.mark.parametrize("form", FORMS)
async def test_a_token_endpoint_answering_a_lone_surrogate_fails_registration_clearly(form: str, tmp_path: Path) -> None:
    async with oauth_world() as (world, upstream_url, token_url):
        world_app = tampered(world, "/token", lambda body: body | {"access_token": LONE}, form)
        async with serve_asgi(world_app) as base:
            token_url, upstream_url = f"{base}/token", base + urlsplit(upstream_url).path
            async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
                response = await gateway.api.post(
                    "/api/v1/upstreams", json=oauth_body("api", "streamable-http", upstream_url, token_url)
                )
                assert response.status_code == 502, response.text
                assert response.headers["content-type"] == "application/problem+json"
                detail = response.json()["detail"]
                assert "the token endpoint of upstream 'api'" in detail and "not valid Unicode" in detail, detail
                _no_surrogate(response)
                assert CLIENT_SECRET not in response.text
                assert (await gateway.api.get("/api/v1/upstreams/api")).status_code == 404
                assert (await gateway.api.get("/readyz")).status_code == 200


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
async def test_a_per_user_token_answer_with_a_lone_surrogate_is_refused_before_it_is_sealed(form: str, field: str) -> None:
    """Code exchange and refresh share this call; what it returns is sealed for the user and sent as a header."""

    async def token(scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps({"access_token": "at-1", "refresh_token": "rt-1", "token_type": "Bearer", "expires_in": 60})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body.encode()})

    async with serve_asgi(tampered(token, "/token", lambda body: body | {field: LONE}, form)) as base:
        grant = OAuthUserGrant(authorization_url=f"{base}/authorize", token_url=f"{base}/token", client_id="bastion-up")
        async with httpx2.AsyncClient() as http:
            with pytest.raises(UpstreamUnavailable) as caught:
                await token_request(http, "up", grant, {"grant_type": "refresh_token", "refresh_token": "rt-0"}, timeout=10)
    assert "the token endpoint of upstream 'up'" in caught.value.detail and "not valid Unicode" in caught.value.detail
    assert "\ud800" not in caught.value.detail


# ---- an OpenID Connect provider: signing in to the admin UI (discovery, token endpoint) and the keys
# that verify its access tokens


@asynccontextmanager
async def signin_provider(tmp_path: Path, path: str, change: Callable[[Any], Any], form: str) -> AsyncIterator[SignInSetup]:
    idp = FakeProvider()
    async with serve_asgi(tampered(idp.app(), path, change, form)) as url:
        idp.url = url
        async with serve(_gateway_settings(tmp_path, url)) as gateway:
            yield SignInSetup(gateway, idp)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("field", ["authorization_endpoint", "service_documentation"])
async def test_a_discovery_document_with_a_lone_surrogate_is_a_clear_page(
    form: str, field: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        return doc | {field: doc.get(field, "") + LONE}

    async with signin_provider(tmp_path, "/.well-known/openid-configuration", change, form) as setup:
        async with setup.browser() as http:
            page = await http.get(f"{setup.base}/admin/oidc/start")
    assert page.status_code == 503, page.text
    # It was reached: the page says its document is unusable, not that it could not be reached.
    assert "did not answer with a discovery document Bastion can use" in page.text, page.text
    _no_surrogate(page)
    why = [r.getMessage() for r in caplog.records if "discovery document is unusable" in r.getMessage()]
    assert why and "not valid Unicode (a lone surrogate \\ud800)" in why[0], why  # the operator's log says why


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("field", ["id_token", "access_token"])
async def test_a_token_endpoint_reply_with_a_lone_surrogate_fails_the_sign_in_clearly(form: str, field: str, tmp_path: Path) -> None:
    async with signin_provider(tmp_path, "/token", lambda reply: reply | {field: reply[field] + LONE}, form) as setup:
        async with setup.browser() as http:
            refused = await setup.sign_in(http)
    assert refused.status_code == 400, refused.text
    assert _signed_in(refused) is None
    assert "identity provider" in _error(refused) and "not valid Unicode" in _error(refused), _error(refused)
    _no_surrogate(refused)


@asynccontextmanager
async def verifier_provider(tmp_path: Path, path: str, change: Callable[[Any], Any], form: str) -> AsyncIterator[VerifierSetup]:
    idp = IdentityProvider()
    idp.add_key("ec1")
    async with serve_asgi(tampered(idp.app(), path, change, form)) as url:
        idp.url = url
        settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", oidc_issuer=url, oidc_jwks_refetch=0)
        async with serve(settings) as gateway:
            await gateway.create_server({"name": "vs", "upstreams": []})
            yield VerifierSetup(gateway, idp)


def _kid(keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [{**keys["keys"][0], "kid": LONE}]}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("/.well-known/openid-configuration", lambda doc: doc | {"jwks_uri": doc["jwks_uri"] + LONE}),
        ("/jwks", _kid),
        ("/jwks", lambda keys: {"keys": [{**keys["keys"][0], "x": LONE}]}),
    ],
)
async def test_provider_keys_with_a_lone_surrogate_are_a_503_not_a_crash(
    form: str, path: str, change: Callable[[Any], Any], tmp_path: Path
) -> None:
    """Safe before the check too (a key whose kid or point is no text was skipped: a 401; a jwks_uri that
    is no URL was a failed fetch: a 503); kept because the verifier shares the checked fetch with sign-in."""
    async with verifier_provider(tmp_path, path, change, form) as setup:
        response = await setup.initialize("vs", setup.idp.token(setup.audience("vs")))
        assert response.status_code == 503, response.text
        _no_surrogate(response)
        assert (await setup.gateway.api.get("/readyz")).status_code == 200


# ---- an MCP Registry: its v0.1 API, and a file or directory of server.json documents


def _with_description(page: dict[str, Any]) -> dict[str, Any]:
    first = page["servers"][0]
    return page | {"servers": [{**first, "server": first["server"] | {"description": LONE}}, *page["servers"][1:]]}


@pytest.mark.parametrize("form", FORMS)
async def test_a_registry_answer_with_a_lone_surrogate_is_refused_and_nothing_is_saved(form: str, gateway: Running) -> None:
    with http_fixture() as upstream:
        app = registry_app(load_documents(upstream.url))
        async with serve_asgi(tampered(app, "/v0.1/servers", _with_description, form)) as url:
            refused = await gateway.api.post("/api/v1/registries", json={"name": "evil", "url": url})
    assert refused.status_code == 502, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "registry source 'evil'" in refused.json()["detail"] and "not valid Unicode" in refused.json()["detail"]
    _no_surrogate(refused)
    assert (await gateway.api.get("/api/v1/registries")).json()["items"] == []
    assert (await gateway.api.get("/readyz")).status_code == 200


async def test_a_registry_refresh_with_a_lone_surrogate_keeps_the_cached_listing(gateway: Running) -> None:
    evil = {"on": False}

    def change(page: dict[str, Any]) -> dict[str, Any]:
        return _with_description(page) if evil["on"] else page

    with http_fixture() as upstream:
        app = registry_app(load_documents(upstream.url))
        async with serve_asgi(tampered(app, "/v0.1/servers", change, "escaped")) as url:
            added = await gateway.api.post("/api/v1/registries", json={"name": "acme", "url": url})
            assert added.status_code == 201, added.text
            evil["on"] = True
            refused = await gateway.api.post("/api/v1/registries/acme/refresh", params={"full": "true"})
    assert refused.status_code == 502, refused.text
    _no_surrogate(refused)
    listed = await gateway.api.get("/api/v1/registries")
    assert listed.status_code == 200, listed.text
    [source] = listed.json()["items"]
    assert source["entries"] == added.json()["entries"] and "not valid Unicode" in source["error"]
    found = await gateway.api.get("/api/v1/registries/search", params={"q": ""})
    assert found.status_code == 200 and "\\ud800" not in found.text


@pytest.mark.parametrize("form", FORMS)
async def test_a_registry_file_with_a_lone_surrogate_is_refused_naming_the_file(form: str, gateway: Running, tmp_path: Path) -> None:
    document = json.loads((Path(__file__).parents[1] / "upstreams/registry/pypi-weather.json").read_text())
    raw = json.dumps(document | {"description": LONE}, ensure_ascii=form == "escaped").encode("utf-8", "surrogatepass")
    (tmp_path / "evil.json").write_bytes(raw)
    refused = await gateway.api.post("/api/v1/registries", json={"name": "local", "path": str(tmp_path / "evil.json")})
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert "registry source 'local'" in detail and "evil.json" in detail and "not valid Unicode" in detail, detail
    _no_surrogate(refused)
    assert (await gateway.api.get("/api/v1/registries")).json()["items"] == []


# ---- an OAuth client's metadata document: its client_id is the URL Bastion fetches it from, so
# whoever starts a sign-in chooses the document


@pytest.fixture
async def authorization_server(tmp_path: Path) -> AsyncIterator[Running]:
    # Its metadata documents are served on loopback (a test-only setting).
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/o.db", oauth_client_metadata_allow_private=True) as running:
        await populate(running)
        yield running


async def client_document(scope: Scope, receive: Receive, send: Send) -> None:
    """A good metadata document, naming itself as client_id."""
    url = f"http://{dict(scope['headers'])[b'host'].decode()}{scope['path']}"
    document = {"client_id": url, "client_name": "Document Client", "redirect_uris": [REDIRECT_URI],
                "client_uri": "https://app.example/", "logo_uri": "https://app.example/logo.png",
                "software_id": "app", "software_version": "1", "token_endpoint_auth_method": "none"}
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(document).encode()})


async def signed_in_as_the_client(gateway: Running, client_id: str) -> list[httpx2.Response]:
    """A user signing in for the client as far as it gets: /authorize, the consent page, Allow, /token."""
    pkce = Pkce()
    async with httpx2.AsyncClient(timeout=30) as http:
        answers = [await http.get(authorize_url(gateway, {"client_id": client_id}, "vs1", pkce))]
        if answers[-1].status_code != 302:
            return answers
        consent = answers[-1].headers["location"]
        answers.append(await http.get(consent))
        if answers[-1].status_code != 200:
            return answers
        form = {**hidden_fields(answers[-1].text), "email": DEV, "password": PASSWORD, "action": "allow"}
        answers.append(await http.post(consent.split("?")[0], data=form))
        if answers[-1].status_code != 303:
            return answers
    code = dict(parse_qsl(urlsplit(answers[-1].headers["location"]).query)).get("code", "")
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": pkce.verifier}
    answers.append(await oauth_client.token_request(gateway, {"client_id": client_id}, **exchange))
    return answers


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc | {"client_name": LONE},
        lambda doc: doc | {"redirect_uris": [*doc["redirect_uris"], "http://127.0.0.1:9/" + LONE]},
        lambda doc: doc | {"logo_uri": doc["logo_uri"] + LONE},
        lambda doc: doc | {"client_uri": doc["client_uri"] + LONE},
        lambda doc: doc | {"software_version": LONE},
    ],
    ids=["client_name", "redirect_uris", "logo_uri", "client_uri", "software_version"],
)
async def test_a_client_metadata_document_with_a_lone_surrogate_is_refused_like_an_invalid_one(
    form: str, change: Callable[[Any], Any], authorization_server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """/authorize refuses the client (400 invalid_request, as for a document that names another
    client) and the debug log says why, naming the document: no consent page, no code, no token."""
    caplog.set_level(logging.DEBUG, logger="bastion.auth")
    async with serve_asgi(tampered(client_document, "/client.json", change, form)) as site:
        client_id = f"{site}/client.json"
        answers = await signed_in_as_the_client(authorization_server, client_id)
    for answer in answers:
        assert answer.status_code < 500, f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}"
        _no_surrogate(answer)
    assert len(answers) == 1, f"the document was used: {[(a.request.url.path, a.status_code) for a in answers]}"
    [refused] = answers
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request", refused.text
    why = [r.getMessage() for r in caplog.records if "client metadata document" in r.getMessage()]
    assert why and "not valid Unicode (a lone surrogate \\ud800)" in why[-1] and client_id in why[-1], why
    assert "\ud800" not in why[-1]
    assert (await authorization_server.api.get("/readyz")).status_code == 200
