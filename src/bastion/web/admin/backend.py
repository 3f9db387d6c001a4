"""The UI's way to do anything: Bastion's own REST API, called in process as the signed-in user.

Every page reads and writes through the same routes, authentication, roles, visibility and error
messages as `curl` would, so the UI can never allow more than the API does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from starlette.types import ASGIApp


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def detail(self) -> str:
        """The problem+json detail (or title) of a refusal, for showing next to a form."""
        if isinstance(self.body, dict):
            return str(self.body.get("detail") or self.body.get("title") or f"HTTP {self.status}")
        return f"HTTP {self.status}"

    def items(self) -> list[dict[str, Any]]:
        found = self.body.get("items") if isinstance(self.body, dict) else None
        return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


class Backend:
    """Calls the running gateway's ASGI app (the whole edge: authentication, roles, REST)."""

    def __init__(self, app: Callable[[], ASGIApp], base_url: str) -> None:
        self._app = app
        self._base = base_url.rstrip("/")

    def client(self, token: str | None, client_ip: str | None) -> httpx2.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        transport = httpx2.ASGITransport(app=self._app(), client=(client_ip or "127.0.0.1", 0))
        return httpx2.AsyncClient(transport=transport, base_url=self._base, headers=headers, timeout=60)

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        client_ip: str | None,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        async with self.client(token, client_ip) as http:
            try:
                request = http.build_request(method, path, json=body, params=params)
            except httpx2.InvalidURL as exc:
                # A page's input quoted into the API's URL can pass httpx's length limit (%FF grows ninefold)
                return Reply(400, {"title": "Bad request", "detail": f"that request cannot be made: {exc}"})
            response = await http.send(request)
        try:
            parsed = response.json() if response.content else None
        except (ValueError, json.JSONDecodeError):
            parsed = None
        return Reply(response.status_code, parsed)
