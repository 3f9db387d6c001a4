"""Small REST client for the gateway's management API, shared by all CLI commands."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import click
import httpx2
from click.core import ParameterSource
from rich.console import Console

from bastion.cli.output import terminal_text

DEFAULT_URL = "http://127.0.0.1:4444"
TIMEOUT_SECONDS = 30.0

F = TypeVar("F", bound=Callable[..., Any])


class ApiError(click.ClickException):
    """A CLI failure: a red `Error: ...` line on stderr with exit code 1, or with `--json` one JSON
    object on stderr (`{"error": {"title", "detail", "status"}}`) so scripts can read it."""

    exit_code = 1

    def __init__(self, message: str, *, title: str | None = None, detail: str | None = None, status: int | None = None):
        super().__init__(message)
        self.title, self.detail, self.status = title, detail, status
        self.as_json = _json_mode()  # read now: click shows the error after the command's context is gone

    def show(self, file: Any = None) -> None:
        """Print the message to stderr, never a traceback."""
        if self.as_json:
            error = {"title": self.title or "Error", "detail": self.detail or self.message, "status": self.status}
            click.echo(terminal_text(json.dumps({"error": error}, ensure_ascii=False)), err=True)
            return
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(f"Error: {terminal_text(self.message)}", style="red", markup=False)


def _json_mode() -> bool:
    """Whether the running command was given --json (errors are then printed as JSON)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get(_JSON_KEY))


def fail(message: str, *, title: str | None = None, detail: str | None = None, status: int | None = None) -> NoReturn:
    """Abort the command with an error message."""
    raise ApiError(message, title=title, detail=detail, status=status)


def seg(value: str) -> str:
    """URL-encode one path segment (slashes included)."""
    try:
        return quote(value, safe="")
    except UnicodeEncodeError:  # bytes in argv that are not UTF-8 arrive as lone surrogates
        fail(f"{value!r} is not UTF-8 text")


def problem_of(response: httpx2.Response) -> tuple[str, str]:
    """The title and detail of a problem+json body, falling back to the status line."""
    title = f"HTTP {response.status_code}"
    if response.reason_phrase:
        title = f"{title} {response.reason_phrase}"
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or title)
        detail = str(body.get("detail") or "")
    elif response.text.strip():
        detail = response.text.strip()[:200]
    return title, detail


@dataclass
class Api:
    """Connection settings plus output mode for one CLI invocation."""

    url: str
    token: str | None = field(default=None, repr=False)
    as_json: bool = False

    def _headers(self) -> dict[str, str]:
        """Request headers, including the bearer token when configured."""
        headers = {"Accept": "application/json", "User-Agent": "bastion-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Send a request and return the decoded JSON body (None for empty replies)."""
        base = self.url.rstrip("/")
        try:
            with httpx2.Client(base_url=base, headers=self._headers(), timeout=TIMEOUT_SECONDS) as client:
                response = client.request(method, path, json=json, params=params or None)
        except httpx2.TimeoutException:
            fail(f"timed out waiting for the gateway at {base}")
        except httpx2.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            fail(f"cannot reach the gateway at {base} ({reason}); is it running? (set --url or BASTION_URL)")
        except httpx2.InvalidURL as exc:
            fail(f"invalid gateway URL {base!r}: {exc}")
        except httpx2.HTTPError as exc:
            fail(f"request to the gateway at {base} failed: {exc}")
        except ValueError as exc:  # the body: NaN or infinity (no JSON holds them), a lone surrogate (no UTF-8 does)
            fail(f"cannot send this to the gateway: {exc}")
        _answered()
        if response.status_code >= 400:
            title, detail = problem_of(response)
            fail(f"{title}: {detail}" if detail else title, title=title, detail=detail, status=response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            fail(f"the gateway at {base} returned a non-JSON response (HTTP {response.status_code})")

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a resource."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body."""
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        """PATCH a JSON body."""
        return self.request("PATCH", path, json=body)

    def delete(self, path: str, params: dict[str, str] | None = None) -> Any:
        """DELETE a resource."""
        return self.request("DELETE", path, params=params)


_META_KEY = "bastion.cli.connection"
_JSON_KEY = "bastion.cli.json"
_ANSWERED_KEY = "bastion.cli.answered"


def _answered() -> None:
    """Note that the gateway has answered this command (what fails after may be the answer's shape)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().meta[_ANSWERED_KEY] = True


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Store --url/--token; an explicit value on an inner group beats env/defaults from outer ones."""
    if value is None or param.name is None:
        return
    conn: dict[str, str] = ctx.meta.setdefault(_META_KEY, {})
    source = ctx.get_parameter_source(param.name)
    explicit = source in (ParameterSource.COMMANDLINE, ParameterSource.PROMPT)
    if explicit or param.name not in conn:
        conn[param.name] = value


def connection_options(func: F) -> F:
    """Add --url (env BASTION_URL) and --token (env BASTION_TOKEN) to a group."""
    func = click.option(
        "--token",
        envvar="BASTION_TOKEN",
        default=None,
        show_envvar=True,
        expose_value=False,
        callback=_remember,
        help="Bearer token for the management API.",
    )(func)
    func = click.option(
        "--url",
        envvar="BASTION_URL",
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        expose_value=False,
        callback=_remember,
        help="Base URL of the gateway.",
    )(func)
    return func


def current_api(as_json: bool = False) -> Api:
    """Build an Api from the connection options collected on the enclosing groups; without a token,
    the session `bastion login` stored for this URL."""
    from bastion.cli.credentials import stored_token

    ctx = click.get_current_context()
    conn: dict[str, str] = ctx.meta.get(_META_KEY, {})
    url = conn.get("url", DEFAULT_URL)
    token = conn.get("token") or stored_token(url)
    if token is not None and not all(" " <= ch <= "~" for ch in token):
        # It cannot go in a header: say so, rather than a traceback or "cannot reach the gateway".
        fail("the token (--token or BASTION_TOKEN) holds control or non-ASCII characters: check how it was copied")
    return Api(url=url, token=token, as_json=as_json)



@contextmanager
def reading_answers(api: Api) -> Iterator[None]:
    """Commands read Bastion's answers as Bastion shapes them: once the gateway has answered, an
    answer of another shape (another server's JSON) is an error in one line, not a traceback."""
    try:
        yield
    except (LookupError, TypeError, AttributeError) as exc:
        if not click.get_current_context().find_root().meta.get(_ANSWERED_KEY):
            raise
        fail(f"the gateway at {api.url} answered in a shape this CLI does not read ({type(exc).__name__}: {exc})")


def api_command(func: F) -> F:
    """Add --json to a command and pass it an `api: Api` keyword (apply innermost)."""

    @click.option("--json", "as_json", is_flag=True, help="Print raw JSON instead of tables.")
    @functools.wraps(func)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
        click.get_current_context().find_root().meta[_JSON_KEY] = as_json
        api = current_api(as_json)
        with reading_answers(api):
            return func(*args, api=api, **kwargs)

    return wrapper  # type: ignore[return-value]
