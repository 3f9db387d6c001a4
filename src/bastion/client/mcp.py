"""BastionMcpClient: the same calls as BastionClient, over a virtual server's MCP endpoint
(2026-07-28, with the official SDK), for services that prefer MCP; errors as the same classes."""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from bastion.client.facade import ToolResult, _server_url
from bastion.core import errors

_BY_NAME: dict[str, type[errors.BastionError]] = {}


def _collect(cls: type[errors.BastionError]) -> None:
    _BY_NAME[cls.__name__] = cls
    for sub in cls.__subclasses__():
        _collect(sub)


_collect(errors.BastionError)


def error_from_rpc(exc: MCPError) -> errors.BastionError:
    """The Bastion error a JSON-RPC error stands for (Bastion names its class in `data.type`)."""
    data = exc.error.data if isinstance(exc.error.data, dict) else {}
    cls = _BY_NAME.get(str(data.get("type")))
    extra = {k: v for k, v in data.items() if k != "type"}
    if cls is None or issubclass(cls, errors.UpstreamRpcError):
        return errors.UpstreamRpcError(exc.error.message, exc.error.code, exc.error.data)
    if issubclass(cls, errors.RateLimited):
        retry = extra.get("retry_after")
        return errors.RateLimited(exc.error.message, retry if isinstance(retry, int) else 1)
    return cls(exc.error.message, **extra)


class BastionMcpClient:
    """`async with BastionMcpClient(url, token) as c: await c.call_tool(...)` over MCP."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0) -> None:
        base, server = _server_url(url)
        self.server = server
        self._url = f"{base}/servers/{server}/mcp"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._stack = AsyncExitStack()
        self._client: Client | None = None

    async def __aenter__(self) -> BastionMcpClient:
        http = await self._stack.enter_async_context(
            httpx2.AsyncClient(headers=self._headers, timeout=httpx2.Timeout(self._timeout, read=None))
        )
        streams = streamable_http_client(self._url, http_client=http)
        self._client = await self._stack.enter_async_context(Client(streams, mode="2026-07-28"))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client = None
        await self._stack.aclose()

    def _live(self) -> Client:
        if self._client is None:
            raise RuntimeError("use BastionMcpClient in 'async with'")
        return self._client

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        try:
            result = await self._live().call_tool(name, arguments or {})
        except MCPError as exc:
            raise error_from_rpc(exc) from None
        content = [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content]
        return ToolResult(content=content, structured=result.structured_content, is_error=bool(result.is_error))

    async def list_tools(self) -> list[dict[str, Any]]:
        try:
            tools = (await self._live().list_tools()).tools
        except MCPError as exc:
            raise error_from_rpc(exc) from None
        return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
