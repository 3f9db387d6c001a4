"""The per-request context every pipeline stage reads and extends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.core.compose import ServerView
from bastion.core.models import CatalogItem
from bastion.core.ports import CallHooks


@dataclass(slots=True)
class Principal:
    """Who is calling. Until users exist there is one: the admin token holder."""

    id: str
    kind: str = "admin"


@dataclass(slots=True)
class CallContext:
    server: str
    method: str
    params: dict[str, Any]
    principal: Principal | None
    hooks: CallHooks | None = None
    view: ServerView | None = None
    item: CatalogItem | None = None
    upstream_params: dict[str, Any] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
