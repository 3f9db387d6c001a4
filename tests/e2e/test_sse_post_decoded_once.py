"""An HTTP+SSE POST is decoded once: its id was checked on one decoding (`refused_request_id`) and
held on its session on another (`request_id_of`)."""

from __future__ import annotations

import json

import httpx2
import pytest

from tests.e2e.test_posted_body_decoded_once import decoded, gateway
from tests.harness import TOKEN, Running

pytestmark = pytest.mark.anyio
__all__ = ["decoded", "gateway"]  # fixtures


async def test_an_http_sse_post_is_decoded_once(gateway: Running, decoded: list[bytes]) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        async with http.stream("GET", "/servers/vs/sse", headers={**headers, "accept": "text/event-stream"}) as stream:
            endpoint = ""
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    endpoint = line[5:].strip()
                    break
            params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()
            sent = await http.post(endpoint, headers={**headers, "content-type": "application/json"}, content=body)
            assert sent.status_code == 202, sent.text
    assert decoded.count(body) == 1
