"""Attack class: what the admin UI's forms took that they should not.

- Bodies: a POST to /admin/* was read whole, at any size (an unauthenticated sign-in form of 300 MB
  fields, a 200 MB file part) before it was refused. Now the body limit (BASTION_MAX_BODY_BYTES; the API
  login's 8 KiB for the sign-in form) is applied before any form is parsed, and a body past it is a 413
  page, answered without reading on (a declared Content-Length past the limit is not read at all).
- The tool playground, through a virtual server the user may not see, one that does not exist, or a
  tool it does not have, said `the call failed: ExceptionGroup` with 200; now the API's 404 message.
- A server edit post carrying only its CSRF token saved the server empty; `visibility` team without a
  team was taken; a form sending `csrf` or `action` twice was read last-wins.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest

from tests.harness import Running, serve, settings_for, stdio_fixture
from tests.identity import make_user
from tests.ui_sign_in import form_token, sign_in_ui

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"
DEV = "dev@example.com"
LIMIT = 64 * 1024


@dataclass
class Ui:
    gateway: Running
    http: httpx2.AsyncClient
    csrf: str

    @property
    def cookie(self) -> str:
        return f"bastion_ui={self.http.cookies['bastion_ui']}"


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[Ui]:
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD, max_body_bytes=LIMIT
    )
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=60) as http:
        signed = await sign_in_ui(http, ADMIN, PASSWORD)
        assert signed.status_code == 303, signed.text
        yield Ui(running, http, form_token((await http.get("/admin/tokens")).text))


async def _raw(base: str, head: str, parts: Iterable[bytes] = ()) -> tuple[int, bytes]:
    """Send a request's head and these parts of its body (not necessarily all of it), then read the
    answer's status and what came of its body: an answer here is one given without the rest."""
    where = urlsplit(base)
    assert where.hostname is not None and where.port is not None
    async with await anyio.connect_tcp(where.hostname, where.port) as stream:
        await stream.send(head.encode())
        for part in parts:
            await stream.send(part)
        received = b""
        with anyio.fail_after(30):  # a guard only: the old code waited for the rest of the body for ever
            while b"</html>" not in received:
                try:
                    received += await stream.receive()
                except anyio.EndOfStream:
                    break
    status = int(received.split(b" ", 2)[1])
    return status, received


def _head(path: str, *lines: str) -> str:
    return f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"


async def test_a_sign_in_form_past_the_api_logins_limit_is_refused_413(ui: Ui) -> None:
    async with httpx2.AsyncClient(base_url=ui.gateway.base_url, timeout=60) as stranger:
        csrf = form_token((await stranger.get("/admin/login")).text)
        data = {"email": ADMIN, "password": PASSWORD, "csrf": csrf, "next": "/admin", "pad": "x" * 9000}
        refused = await stranger.post("/admin/login", data=data)
    assert refused.status_code == 413, refused.text
    assert "larger than the 8,192 bytes" in refused.text and "<html" in refused.text
    assert "bastion_ui=bss_" not in ", ".join(refused.headers.get_list("set-cookie"))


@pytest.mark.parametrize("path", ["/admin/login", "/admin/teams"])
async def test_a_declared_body_past_the_limit_is_refused_before_it_is_read(ui: Ui, path: str) -> None:
    head = _head(path, "content-type: multipart/form-data; boundary=XX", f"content-length: {200 * 1024 * 1024}")
    status, page = await _raw(ui.gateway.base_url, head, [b"--XX\r\n"])
    assert status == 413, page[:500]


@pytest.mark.parametrize(("path", "signed"), [("/admin/login", False), ("/admin/teams", True), ("/admin/teams", False)])
async def test_a_chunked_body_is_refused_at_the_limit_not_read_to_its_end(ui: Ui, path: str, signed: bool) -> None:
    head = _head(path, "content-type: application/x-www-form-urlencoded", "transfer-encoding: chunked",
                 *([f"cookie: {ui.cookie}"] if signed else []))
    chunk = b"a=" + b"x" * 16382
    # Past the limit, and never the last chunk: the answer comes without the body's end.
    status, page = await _raw(ui.gateway.base_url, head, [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (LIMIT // len(chunk) + 2))
    assert status == 413, page[:500]
    assert b"This form is larger than" in page


async def test_the_limit_is_the_configured_one(ui: Ui) -> None:
    made = await ui.http.post("/admin/teams", data={"csrf": ui.csrf, "name": "small", "pad": "x" * (LIMIT // 2)})
    assert made.status_code == 303, made.text
    refused = await ui.http.post("/admin/teams", data={"csrf": ui.csrf, "name": "large", "pad": "x" * LIMIT})
    assert refused.status_code == 413, refused.text
    teams = (await ui.gateway.api.get("/api/v1/teams")).text
    assert "small" in teams and "large" not in teams


async def test_the_form_parser_is_capped(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD)
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=60) as http:
        assert (await sign_in_ui(http, ADMIN, PASSWORD)).status_code == 303
        csrf = form_token((await http.get("/admin/teams")).text)
        big = await http.post("/admin/teams", data={"csrf": csrf, "name": "big", "pad": "x" * (1024 * 1024 + 1)})
        assert big.status_code == 400 and "This form cannot be read" in big.text, big.text[-1500:]
        many = await http.post("/admin/teams", content=("&".join(f"f{i}=1" for i in range(1001)) + f"&csrf={csrf}&name=many").encode(),
                               headers={"content-type": "application/x-www-form-urlencoded"})
        assert many.status_code == 400 and "Too many fields" in many.text
        signin = await http.post("/admin/login", content=b"&".join(b"f%d=1" % i for i in range(20)),
                                 headers={"content-type": "application/x-www-form-urlencoded"})
        assert signin.status_code == 400 and "Too many fields" in signin.text
        teams = (await running.api.get("/api/v1/teams")).text
        assert "big" not in teams and "many" not in teams


async def test_a_repeated_action_or_csrf_field_is_refused(ui: Ui) -> None:
    await ui.gateway.register({**stdio_fixture("up"), "visibility": "public"})
    await ui.gateway.create_server({"name": "vs", "upstreams": ["up"], "visibility": "public"})
    form = {"content-type": "application/x-www-form-urlencoded"}
    twice = await ui.http.post("/admin/upstreams/up", content=f"csrf={ui.csrf}&action=refresh&action=delete".encode(), headers=form)
    assert twice.status_code == 400 and "more than once" in twice.text
    csrf_twice = await ui.http.post("/admin/servers/vs/delete", content=f"csrf=bad&csrf={ui.csrf}".encode(), headers=form)
    assert csrf_twice.status_code == 400 and "more than once" in csrf_twice.text
    assert (await ui.gateway.api.get("/api/v1/upstreams/up")).status_code == 200
    assert (await ui.gateway.api.get("/api/v1/servers/vs")).status_code == 200


async def test_a_server_edit_missing_its_fields_does_not_empty_the_server(ui: Ui) -> None:
    await ui.gateway.register({**stdio_fixture("up"), "visibility": "public"})
    await ui.gateway.create_server({"name": "vs", "upstreams": ["up"], "visibility": "public", "description": "keep me"})
    for body in (f"csrf={ui.csrf}", f"csrf={ui.csrf}&description=%FF%FE&visibility=%FF"):
        refused = await ui.http.post("/admin/servers/vs/edit", content=body.encode(),
                                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert refused.status_code == 400 and "missing its fields" in refused.text, refused.text[-1500:]
        kept = (await ui.gateway.api.get("/api/v1/servers/vs")).json()
        assert kept["upstreams"] == ["up"] and kept["description"] == "keep me" and kept["visibility"] == "public"
    # The form as a browser sends it with every upstream unticked: the server loses its upstreams, as asked
    page = (await ui.http.get("/admin/servers/vs/edit")).text
    fields = dict.fromkeys(("description", "tools", "prompts", "resources", "team", "policy", "rate_limits"), "")
    saved = await ui.http.post("/admin/servers/vs/edit",
                               data={**fields, "csrf": form_token(page), "prefix": "always", "visibility": "public", "description": "now"})
    assert saved.status_code == 303, saved.text[-1500:]
    assert (await ui.gateway.api.get("/api/v1/servers/vs")).json()["upstreams"] == []


async def test_team_visibility_without_a_team_is_refused(ui: Ui) -> None:
    await ui.gateway.register({**stdio_fixture("up"), "visibility": "public"})
    made = await ui.gateway.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["up"], "visibility": "team"})
    assert made.status_code == 400 and "needs a team" in made.json()["detail"], made.text
    await ui.gateway.create_server({"name": "vs", "upstreams": ["up"], "visibility": "public"})
    changed = await ui.gateway.api.patch("/api/v1/servers/vs", json={"visibility": "team"})
    assert changed.status_code == 400 and "needs a team" in changed.json()["detail"], changed.text
    upstream = await ui.gateway.api.patch("/api/v1/upstreams/up", json={"visibility": "team"})
    assert upstream.status_code == 400 and "needs a team" in upstream.json()["detail"], upstream.text
    fields = dict.fromkeys(("description", "tools", "prompts", "resources", "team", "policy", "rate_limits"), "")
    page = await ui.http.post("/admin/servers/vs/edit", data={**fields, "csrf": ui.csrf, "prefix": "always", "visibility": "team"})
    assert page.status_code == 400 and "needs a team" in page.text
    assert (await ui.gateway.api.get("/api/v1/servers/vs")).json()["visibility"] == "public"
    assert (await ui.gateway.api.patch("/api/v1/servers/vs", json={"description": "x"})).status_code == 200


async def test_the_playground_says_no_such_server_or_tool_alike(ui: Ui) -> None:
    gateway = ui.gateway
    await gateway.register({**stdio_fixture("up"), "visibility": "public"})
    await gateway.create_server({"name": "pub", "upstreams": ["up"], "visibility": "public"})
    await gateway.create_server({"name": "priv", "upstreams": ["up"], "visibility": "private"})
    await make_user(gateway, DEV, "developer")
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        assert (await sign_in_ui(http, DEV, PASSWORD)).status_code == 303
        page = await http.get("/admin/catalog/tools/up__echo")
        assert page.status_code == 200, page.text[-1500:]
        csrf = form_token(page.text)

        async def call(target: str) -> tuple[int, str]:
            answer = await http.post("/admin/catalog/tools/up__echo",
                                     data={"csrf": csrf, "action": "call", "target": target, "raw_json": '{"text": "hi"}'})
            shown = re.search(r'class="flash bad" role="alert">([^<]*)<', answer.text)
            return answer.status_code, shown.group(1) if shown else ""

        for server in ("priv", "nosuch"):
            status, shown = await call(f"{server}|up__echo")
            assert (status, shown) == (404, f"virtual server &#39;{server}&#39; does not exist"), shown
        status, shown = await call("pub|no_such_tool")
        assert (status, shown) == (404, "unknown tool &#39;no_such_tool&#39; on virtual server &#39;pub&#39;")
        status, shown = await call("pub|up__echo")
        assert status == 200 and not shown
