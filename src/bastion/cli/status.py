"""`bastion health` and `bastion cluster`: is the gateway alive and ready, and what this replica is."""

from __future__ import annotations

import click
import httpx2

from bastion.cli.http import TIMEOUT_SECONDS, Api, api_command, connection_options, fail
from bastion.cli.output import emit, message


@click.command("health")
@connection_options
@api_command
def health(api: Api) -> None:
    """Check the probes: /healthz (alive) and /readyz (database, migrations, Redis); exit 1 if not ready."""
    base = api.url.rstrip("/")
    try:
        with httpx2.Client(base_url=base, timeout=TIMEOUT_SECONDS) as client:
            alive = client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
    except httpx2.HTTPError as exc:
        fail(f"cannot reach the gateway at {base} ({type(exc).__name__}); is it running?")
    try:
        body = ready.json()
    except ValueError:
        body = {}
    found = body.get("problems") if isinstance(body, dict) else None
    problems = [str(p) for p in found] if isinstance(found, list) else []
    is_ready = ready.status_code == 200
    if api.as_json:
        emit({"alive": alive, "ready": is_ready, "problems": problems}, as_json=True)
    else:
        message("ready" if is_ready else "NOT ready: " + "; ".join(problems or [f"HTTP {ready.status_code}"]))
    if not is_ready:
        raise SystemExit(1)


@click.command("cluster")
@connection_options
@api_command
def cluster(api: Api) -> None:
    """Show the replica that answered: its id, whether it leads (runs health checks), its config version."""
    emit(api.get("/api/v1/cluster"), as_json=api.as_json, title="Cluster")
