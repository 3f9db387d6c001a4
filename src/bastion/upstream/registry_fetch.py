"""Outbound GETs to MCP Registry APIs: one function, a total deadline and a size cap.

The one place registry URLs are fetched, so it can be switched to the SSRF-checked outbound client
without touching its callers. Foreign errors become UpstreamError subclasses; messages name the
registry source, never the URL's query (it may carry a cursor) or any credential.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2

from bastion.core.errors import UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from bastion.core.surrogates import NotUnicode, strict_loads

MAX_BYTES = 8 * 1024 * 1024
DEADLINE = 30.0


async def fetch_json(
    http: httpx2.AsyncClient,
    url: str,
    *,
    params: dict[str, str] | None = None,
    what: str,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> Any:
    """GET `url` and parse its JSON body, within `deadline` seconds in total and `max_bytes`; JSON
    holding a lone surrogate is an UpstreamProtocolError, as an answer that is not JSON is."""
    body = bytearray()
    try:
        with anyio.fail_after(deadline):
            async with http.stream("GET", url, params=params, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise UpstreamUnavailable(f"{what} answered HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise UpstreamProtocolError(f"{what} answered more than {max_bytes} bytes")
    except TimeoutError:
        raise UpstreamTimeout(f"{what} did not answer within {deadline:g} s") from None
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(f"{what} could not be reached ({type(exc).__name__})") from None
    try:
        return strict_loads(body, what, "answered with")  # stored as an entry, it would break whoever reads it
    except NotUnicode as exc:
        raise UpstreamProtocolError(str(exc)) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UpstreamProtocolError(f"{what} answered with something that is not JSON") from None
