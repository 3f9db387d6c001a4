"""Attack class: text a browser draws otherwise than it reads, in the names Bastion asks people for. An
email with a RIGHT-TO-LEFT OVERRIDE (U+202E) reads as another address on every page that shows it, a
zero-width space or Unicode tag characters are drawn as nothing. Where Bastion takes the text itself
(creating a user over REST or the CLI, a team, an API token) it refuses such text with a 400 naming the
field; an identity provider's email cannot be refused (that would lock its person out) and is written
out where it is shown instead (tests/browser/test_ui_people_text.py)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.harness import Running
from tests.identity import PASSWORD, make_user, signed_in

pytestmark = pytest.mark.anyio
TAGS = "".join(chr(0xE0000 + ord(c)) for c in "hi")
HIDDEN = {
    "right-to-left override": "\u202e",
    "first strong isolate": "\u2068",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "tag characters": TAGS,
    "soft hyphen": "\u00ad",
    "Hangul filler": "\u3164",
}


def problem(response: object, field: str) -> str:
    """The detail of a 400 problem+json that names `field`."""
    status = getattr(response, "status_code")
    headers = getattr(response, "headers")
    assert status == 400, getattr(response, "text")
    assert headers["content-type"].startswith("application/problem+json")
    detail: str = getattr(response, "json")()["detail"]
    assert f"'{field}'" in detail, detail
    assert not any(c in detail for c in HIDDEN.values()), detail  # the refusal shows what it refuses
    return detail


@pytest.mark.parametrize("hidden", list(HIDDEN.values()), ids=list(HIDDEN))
async def test_an_email_with_characters_a_browser_hides_is_refused_naming_the_field(gateway: Running, hidden: str) -> None:
    email = f"eve{hidden}moc.knab@evil.example"
    detail = problem(await gateway.api.post("/api/v1/users", json={"email": email, "password": PASSWORD}), "email")
    assert "\\u" in detail  # which character, written out
    assert all(u["email"] != email for u in (await gateway.api.get("/api/v1/users")).json()["items"])


async def test_a_token_or_team_name_with_characters_a_browser_hides_is_refused_naming_the_field(gateway: Running) -> None:
    for hidden in HIDDEN.values():
        body = {"name": f"ci deploy{hidden}", "permissions": ["read"]}
        problem(await gateway.api.post("/api/v1/tokens", json=body), "name")
        team = await gateway.api.post("/api/v1/teams", json={"name": f"ops{hidden}"})
        assert team.status_code == 400 and "team name" in team.json()["detail"]  # a slug: ASCII only
    await make_user(gateway, "dev@example.com", "developer")
    async with signed_in(gateway, "dev@example.com") as dev:
        problem(await dev.post("/api/v1/tokens", json={"name": "mine\u202enwo", "permissions": ["read"]}), "name")
    names = [t["name"] for t in (await gateway.api.get("/api/v1/tokens")).json()["items"]]
    assert not any(c in name for name in names for c in HIDDEN.values()), names
    # Ordinary text in any script is still a name.
    made = await gateway.api.post("/api/v1/tokens", json={"name": "déploiement — 配備", "permissions": ["read"]})
    assert made.status_code == 201, made.text


@pytest.mark.sqlite
async def test_the_cli_refuses_such_an_email_too(tmp_path: Path) -> None:
    env = {"BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bastion.db", "XDG_CONFIG_HOME": str(tmp_path),
           "BASTION_TOKEN": None}
    args = ["users", "create", "root\u202emoc.knab@example.com", "--admin", "--password-stdin"]
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, args, env=env, input=PASSWORD + "\n"))
    assert result.exit_code == 1, result.output
    assert "'email'" in result.stderr and "\\u202e" in result.stderr
