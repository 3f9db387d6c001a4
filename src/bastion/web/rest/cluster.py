"""REST: /api/v1/cluster — this replica's id, whether it leads, and how many health checks it ran."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.gateway import Gateway


def cluster_routes(gateway: Gateway, replica: str, is_leader: Callable[[], bool]) -> list[Route]:
    async def show(_request: Request) -> Response:
        return JSONResponse(
            {
                "replica": replica,
                "leader": is_leader(),
                "health_checks": gateway.health_checks,
                "snapshot_version": gateway.snapshot.version,
            }
        )

    return [Route("/api/v1/cluster", show, methods=["GET"])]
