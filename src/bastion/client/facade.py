"""BastionClient: the REST facade of one virtual server, with errors as typed exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx2

from bastion.core import errors

_BY_TITLE: dict[str, type[errors.BastionError]] = {}


def _collect(cls: type[errors.BastionError]) -> None:
    _BY_TITLE.setdefault(cls.title, cls)
    for sub in cls.__subclasses__():
        _collect(sub)


_collect(errors.BastionError)
_BY_STATUS: dict[int, type[errors.BastionError]] = {
    400: errors.BadRequest,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    422: errors.InvalidArguments,
    429: errors.TooManyRequests,
    502: errors.UpstreamError,
    503: errors.ServiceUnavailable,
    504: errors.UpstreamTimeout,
}


@dataclass(frozen=True)
class ToolResult:
    """A tool's result: MCP content blocks, structured output (if the tool has any), and whether
    the tool itself reported a failure (an upstream tool error is a result, not an exception)."""

    content: list[dict[str, Any]] = field(default_factory=list)
    structured: dict[str, Any] | None = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The text blocks of the content, joined by newlines."""
        return "\n".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")


def error_from(status: int, body: Any) -> errors.BastionError:
    """The Bastion error a problem+json answer stands for (by its title, else by its status)."""
    problem = body if isinstance(body, dict) else {}
    detail = str(problem.get("detail") or f"HTTP {status}")
    extra = {k: v for k, v in problem.items() if k not in ("type", "title", "status", "detail")}
    cls = _BY_TITLE.get(str(problem.get("title")))
    if cls is None or cls.http_status != status:
        cls = _BY_STATUS.get(status) or (errors.UpstreamError if status >= 500 else errors.BadRequest)
    if issubclass(cls, errors.RateLimited):
        retry = extra.get("retry_after")
        return errors.RateLimited(detail, retry if isinstance(retry, int) else 1)
    if issubclass(cls, errors.UpstreamRpcError):
        return errors.UpstreamError(detail, **extra)
    return cls(detail, **extra)


def _server_url(url: str) -> tuple[str, str]:
    """(base URL, server name) from a virtual server's URL: .../servers/NAME[/mcp], or the facade's
    .../api/v1/servers/NAME."""
    parts = urlsplit(url)
    segments = parts.path.rstrip("/").split("/")
    if "servers" not in segments:
        raise ValueError(f"not a virtual server URL (expected .../servers/NAME): {url!r}")
    index = len(segments) - 1 - segments[::-1].index("servers")
    if index + 1 >= len(segments) or not segments[index + 1]:
        raise ValueError(f"the URL names no virtual server: {url!r}")
    prefix = segments[:index]
    if prefix[-2:] == ["api", "v1"]:
        prefix = prefix[:-2]
    base = urlunsplit((parts.scheme, parts.netloc, "/".join(prefix), "", ""))
    return base.rstrip("/"), segments[index + 1]


class BastionClient:
    """Calls one virtual server's tools, prompts and resources through Bastion's REST facade."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0, http: httpx2.AsyncClient | None = None) -> None:
        base, self.server = _server_url(url)
        self._root = f"/api/v1/servers/{quote(self.server, safe='')}"
        self._own_http = http is None
        self._http = http or httpx2.AsyncClient(timeout=timeout)
        self._base = base
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def __aenter__(self) -> BastionClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, self._base + self._root + path, headers=self._headers, **kwargs)
        except httpx2.TimeoutException as exc:
            raise errors.UpstreamTimeout(f"Bastion did not answer in time ({type(exc).__name__})") from None
        except httpx2.HTTPError as exc:
            raise errors.ServiceUnavailable(f"could not reach Bastion: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise error_from(response.status_code, body)
        return body

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        """Call tool `name`; raises InvalidArguments (each bad field), Forbidden, RateLimited, ..."""
        body = await self._request("POST", f"/tools/{quote(name, safe='')}", json=arguments or {})
        return ToolResult(
            content=list(body.get("content") or []),
            structured=body.get("structured"),
            is_error=bool(body.get("is_error")),
        )

    async def list_tools(self) -> list[dict[str, Any]]:
        """The tools this token may call on the server (MCP tool definitions)."""
        return list((await self._request("GET", "/tools")).get("tools", []))

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> dict[str, Any]:
        return dict(await self._request("POST", f"/prompts/{quote(name, safe='')}", json=arguments or {}))

    async def read_resource(self, uri: str) -> dict[str, Any]:
        return dict(await self._request("GET", "/resources/read", params={"uri": uri}))

    async def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of what this token may use on the server."""
        return dict(await self._request("GET", "/openapi.json"))
