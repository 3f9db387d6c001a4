"""Whether a change of an upstream would send its stored credentials somewhere new: pure, no I/O.

Stored credentials are write-only (shown as a mask): someone who may edit an upstream but never saw
its secrets must not be able to read them by pointing the upstream at a server of their own and
keeping what is stored. A move is fine when every credential that goes along is given anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.core.models import OAuthUserGrant, QueryApiKey, UpstreamSpec


def _destination(spec: UpstreamSpec) -> dict[str, Any]:
    """Everything that decides where an upstream's credentials are sent, or which program gets them."""
    auth = spec.auth.model_dump(exclude={"client_secret", "value"}) if spec.auth is not None else None
    source = spec.openapi
    openapi = None if source is None else {"spec": source.spec, "base_url": source.base_url}
    return {
        "transport": spec.transport, "url": spec.url, "command": spec.command, "args": spec.args,
        "openapi": openapi, "auth": auth,
    }


def same_destination(old: UpstreamSpec, new: UpstreamSpec) -> bool:
    """Whether `new` sends credentials where `old` does, to the same program and endpoints. When it
    does not, the accounts users connected for `old` (stored apart from the spec) must be forgotten."""
    return _destination(old) == _destination(new)


def _secret_of(spec: UpstreamSpec) -> str | None:
    if isinstance(spec.auth, QueryApiKey):
        return spec.auth.value
    return spec.auth.client_secret if spec.auth is not None else None


def _given(body: Mapping[str, Any], field: str, key: str, mask: str) -> bool:
    values = body.get(field)
    return isinstance(values, dict) and values.get(key) not in (None, mask)


def moved_secrets(old: UpstreamSpec, new: UpstreamSpec, body: Mapping[str, Any], mask: str) -> list[str]:
    """The stored credentials that `new` would send to a new destination without the change (`body`,
    as sent, where `mask` stands for a stored value) giving them anew; empty when nothing moves."""
    if same_destination(old, new):
        return []
    moved = [
        f"{field} {key!r}"
        for field, before, after in (("header", old.headers, new.headers), ("variable", old.env, new.env))
        for key in after
        if key in before and not _given(body, "headers" if field == "header" else "env", key, mask)
    ]
    secret = _secret_of(old)
    auth = body.get("auth")
    secret_field = "value" if isinstance(old.auth, QueryApiKey) else "client_secret"
    if secret is not None and _secret_of(new) == secret and not _given({"auth": auth}, "auth", secret_field, mask):
        moved.append(f"auth {secret_field!r}")
    if isinstance(old.auth, OAuthUserGrant) and isinstance(new.auth, OAuthUserGrant):
        moved.append("the tokens of users who connected their accounts")
    return moved
