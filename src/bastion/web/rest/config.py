"""REST: /api/v1/config — export the configuration as a document, and import one (admins only).

An import here never reads this server's environment: a `${NAME}` secret reference the client did
not resolve keeps the stored secret of an existing upstream, or is refused for a new one.
"""

from __future__ import annotations

from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.control.config_sync import ConfigSync
from bastion.core.config_doc import Action, dump, read_document
from bastion.core.errors import BadRequest, Forbidden
from bastion.core.identity import is_admin
from bastion.web.rest.access import principal_of

_TRUE = ("1", "true", "yes")


def action_json(action: Action) -> dict[str, Any]:
    return {"action": action.verb, "kind": action.kind, "name": action.name, "changes": list(action.changes), "line": action.line()}


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in (*_TRUE, "0", "false", "no"):
        raise BadRequest(f"'{name}' must be true or false")
    return value in _TRUE


def config_routes(sync: ConfigSync, max_body: int) -> list[Route]:
    def admin_only(request: Request) -> None:
        if not is_admin(principal_of(request)):
            raise Forbidden("only admins export or import the configuration", missing="role:admin")

    async def export(request: Request) -> Response:
        """The configuration as a document (JSON, or YAML with ?format=yaml); secrets as ${VARIABLE}."""
        admin_only(request)
        data = dump(await sync.export())
        wants_yaml = request.query_params.get("format") == "yaml" or "yaml" in request.headers.get("accept", "")
        if wants_yaml:
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
            return Response(text, media_type="application/yaml")
        return JSONResponse(data)

    async def apply(request: Request) -> Response:
        """Bring the configuration to a document (YAML or JSON body); ?dry_run=true only plans, ?prune=true deletes the rest."""
        admin_only(request)
        dry_run, prune = _flag(request, "dry_run"), _flag(request, "prune")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_body:
                raise BadRequest(f"request body is larger than {max_body} bytes")
        if not body:
            raise BadRequest("a configuration document (YAML or JSON) is required")
        doc = read_document(bytes(body))
        principal = principal_of(request)
        actions = await sync.apply(
            doc, dry_run=dry_run, prune=prune, actor=principal.user or principal.id, owner=principal.user
        )
        return JSONResponse({"dry_run": dry_run, "prune": prune, "actions": [action_json(a) for a in actions]})

    return [
        Route("/api/v1/config", export, methods=["GET"]),
        Route("/api/v1/config", apply, methods=["POST"]),
    ]
