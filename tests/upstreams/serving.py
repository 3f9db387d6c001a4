"""Serve a test upstream's ASGI app on loopback and announce `READY <port>` on stdout."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvicorn

from bastion.web.listen import listening_socket


async def serve_ready(app: Any, port: int, *, name: str, http: str = "auto") -> None:
    """Bind first (a busy port fails here with a plain message and exit code 1), then serve."""
    try:
        # TCP_NODELAY, inherited by accepted connections: without it a kept-alive response waits
        # ~40 ms for the client's delayed ACK.
        sock = listening_socket("127.0.0.1", port)
    except OSError as exc:
        sys.stderr.write(f"{name} cannot bind 127.0.0.1:{port}: {exc}\n")
        raise SystemExit(1) from None
    # Stopped (SIGTERM) with a client's stream still open, uvicorn would wait for it for ever (the
    # harness then kills it after 10 s): a test upstream goes after one second.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", http=http, timeout_graceful_shutdown=1)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise SystemExit(1)
        await asyncio.sleep(0.01)
    sys.stdout.write(f"READY {server.servers[0].sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await task
