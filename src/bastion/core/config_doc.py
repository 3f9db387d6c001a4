"""Configuration as code: the document (`bastion export` / `bastion import`) and the plan between
what is configured and what the document wants. Pure: no I/O.

Secret values (header and env values, auth secrets) never appear in clear in an export: each is a
reference `${VARIABLE}`. The process that reads the file (the CLI, `serve --config`) replaces the
references whose variable it has; a reference left unresolved keeps the stored secret of an
existing upstream and is an error for a secret it does not have yet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.core.errors import BadRequest
from bastion.core.models import (
    Era,
    Isolation,
    OpenApiSource,
    PinMode,
    PrefixMode,
    Transport,
    UpstreamAuth,
    UpstreamSpec,
    VirtualServerSpec,
    Visibility,
)
from bastion.core.policy import Policy
from bastion.core.ratelimit import RateLimits
from bastion.core.surrogates import shown, yaml_surrogate
from bastion.core.transforms import ToolTransform
from bastion.core.values import nul_at, unfit_number_at
from bastion.core.yaml_text import AliasBomb, load_yaml

DOC_VERSION: Literal[1] = 1
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
AUTH_SECRETS = ("client_secret", "value")
"""The fields of a stored auth form that are secrets (OAuth client secret, query API key)."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeamDoc(_Doc):
    name: str
    members: tuple[str, ...] = ()
    """By email (or user id); the users must exist."""


class RegistryDoc(_Doc):
    name: str
    url: str | None = None
    path: str | None = None


class UpstreamDoc(_Doc):
    name: str
    transport: Transport
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    isolation: Isolation = "shared"
    protocol: Era = "auto"
    enabled: bool = True
    auth: UpstreamAuth | None = None
    openapi: OpenApiSource | None = None
    team: str | None = None
    visibility: Visibility = "private"
    pin: PinMode = "block"
    approved: dict[str, str] | None = None
    """Pinned definitions, `"{kind}:{key}"` -> the approved definition's hash (core/pinning.py): an
    item whose definition has another hash waits for approval. Left out: the importer approves what a
    new upstream offers (as an admin registering it does) and existing pins stay."""


class ServerDoc(_Doc):
    name: str
    description: str | None = None
    tools: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()
    prefix: PrefixMode = "always"
    policy: Policy | None = None
    rate_limits: RateLimits | None = None
    transforms: dict[str, ToolTransform] = Field(default_factory=dict)
    discovery: Literal["list", "search"] = "list"
    team: str | None = None
    visibility: Visibility = "private"


class ConfigDoc(_Doc):
    version: Literal[1] = DOC_VERSION
    teams: tuple[TeamDoc, ...] = ()
    registries: tuple[RegistryDoc, ...] = ()
    upstreams: tuple[UpstreamDoc, ...] = ()
    servers: tuple[ServerDoc, ...] = ()


def parse_doc(data: Any) -> ConfigDoc:
    """The document, or BadRequest naming every problem with its path (`upstreams.0.colour: ...`)."""
    if not isinstance(data, dict):
        raise BadRequest("a configuration document is a mapping with 'teams', 'registries', 'upstreams', 'servers'")
    try:
        doc = ConfigDoc.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err["loc"]) or "document"
            parts.append(f"{where}: {err['msg']}")  # never the input value: it may be a secret
        raise BadRequest("invalid configuration: " + "; ".join(parts)) from None
    for kind, names in (
        ("team", [t.name for t in doc.teams]),
        ("registry source", [r.name for r in doc.registries]),
        ("upstream", [u.name for u in doc.upstreams]),
        ("virtual server", [s.name for s in doc.servers]),
    ):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise BadRequest(f"invalid configuration: {kind} {', '.join(map(repr, twice))} appears more than once")
    return doc


def _compact(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry without its empty and null fields (their defaults), for a readable file."""
    return {k: v for k, v in entry.items() if v not in (None, [], {})}


def dump(doc: ConfigDoc) -> dict[str, Any]:
    """The document as plain data for YAML/JSON, in a stable order, defaults left out."""
    data = doc.model_dump(mode="json")
    out: dict[str, Any] = {"version": DOC_VERSION}
    for server, entry in zip(doc.servers, data["servers"], strict=True):
        # A transform's argument tells "fixed: null" (a value) from no fixed value at all: keep it so.
        entry["transforms"] = {k: t.model_dump(mode="json", exclude_unset=True) for k, t in server.transforms.items()}
    for key in ("teams", "registries", "upstreams", "servers"):
        out[key] = [_compact(entry) for entry in data[key]]
    return out


def read_document(text: str | bytes) -> ConfigDoc:
    """A YAML (or JSON) document, checked; BadRequest saying where it is wrong."""
    try:
        data = load_yaml(text)
    except AliasBomb as exc:
        raise BadRequest(f"the configuration is refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise BadRequest(f"the configuration is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise BadRequest("the configuration nests too deeply") from None
    data, found = yaml_surrogate(text, data)
    if found is not None:  # text that no database or upstream can take
        raise BadRequest(f"the configuration is refused: a lone surrogate ({shown(found)}) is not text")
    nul = nul_at(data)
    if nul is not None:  # no column can store one (PostgreSQL refuses it: a failed step, a 500)
        raise BadRequest(f"the configuration is refused: {nul or 'the document'} holds a NUL character")
    unfit = unfit_number_at(data)
    if unfit is not None:  # YAML's .inf and .nan: no JSON column can store one (PostgreSQL refuses it: a 500)
        raise BadRequest(f"the configuration is refused: {unfit or 'the document'} holds NaN or an infinity")
    return parse_doc(data)


# -- secrets ---------------------------------------------------------------------------------


def pin_key(kind: str, key: str) -> str:
    return f"{kind}:{key}"


def reference_of(value: str) -> str | None:
    """The variable a `${NAME}` value refers to, or None for a plain value."""
    match = _REFERENCE.match(value)
    return match.group(1) if match else None


def variable_name(upstream: str, where: str, key: str) -> str:
    """`BASTION_SECRET_GITHUB_HEADER_AUTHORIZATION` for the Authorization header of upstream github."""
    return re.sub(r"[^A-Z0-9]+", "_", f"BASTION_SECRET_{upstream}_{where}_{key}".upper()).strip("_")


def _secret_fields(doc: UpstreamDoc) -> list[tuple[str, str, str]]:
    """(where, key, value) of every secret in the upstream document."""
    out = [("header", k, v) for k, v in doc.headers.items()] + [("env", k, v) for k, v in doc.env.items()]
    if doc.auth is not None:
        for field in AUTH_SECRETS:
            value = getattr(doc.auth, field, None)
            if isinstance(value, str):
                out.append(("auth", field, value))
    return out


def _with_secrets(doc: UpstreamDoc, values: Mapping[tuple[str, str], str]) -> UpstreamDoc:
    headers = {k: values.get(("header", k), v) for k, v in doc.headers.items()}
    env = {k: values.get(("env", k), v) for k, v in doc.env.items()}
    auth = doc.auth
    if auth is not None:
        update = {f: values[("auth", f)] for f in AUTH_SECRETS if ("auth", f) in values}
        auth = auth.model_copy(update=update)
    return doc.model_copy(update={"headers": headers, "env": env, "auth": auth})


def upstream_doc(spec: UpstreamSpec) -> UpstreamDoc:
    """A stored upstream as a document entry, secrets in clear (for comparing, never for output)."""
    return UpstreamDoc(
        **spec.model_dump(exclude={"owner", "credentials_error", "origin", "destinations", "auth", "openapi"}),
        auth=spec.auth, openapi=spec.openapi,
    )


def export_upstream(spec: UpstreamSpec, approved: dict[str, str] | None = None) -> UpstreamDoc:
    """The document of a stored upstream, every secret replaced by a reference to a variable."""
    doc = upstream_doc(spec).model_copy(update={"approved": approved})
    refs = {(w, k): "${" + variable_name(spec.name, w, k) + "}" for w, k, _ in _secret_fields(doc)}
    return _with_secrets(doc, refs)


def resolve_references(doc: ConfigDoc, environ: Mapping[str, str]) -> ConfigDoc:
    """Replace each `${NAME}` secret whose variable `environ` has; leave the others as references."""
    upstreams = []
    for up in doc.upstreams:
        values = {}
        for where, key, value in _secret_fields(up):
            name = reference_of(value)
            if name is not None and name in environ:
                values[(where, key)] = environ[name]
        upstreams.append(_with_secrets(up, values))
    return doc.model_copy(update={"upstreams": tuple(upstreams)})


def keep_stored_secrets(doc: UpstreamDoc, current: UpstreamSpec | None) -> UpstreamDoc:
    """Unresolved references take the stored secret of the same field; BadRequest naming the variable
    (never a value) when there is none to keep."""
    stored: dict[tuple[str, str], str] = {}
    if current is not None:
        stored |= {("header", k): v for k, v in current.headers.items()}
        stored |= {("env", k): v for k, v in current.env.items()}
        if current.auth is not None and doc.auth is not None and current.auth.type == doc.auth.type:
            for field in AUTH_SECRETS:
                value = getattr(current.auth, field, None)
                if isinstance(value, str):
                    stored[("auth", field)] = value
    values = {}
    for where, key, value in _secret_fields(doc):
        name = reference_of(value)
        if name is None:
            continue
        if (where, key) not in stored:
            raise BadRequest(
                f"upstream {doc.name!r}: {where} {key!r} refers to ${{{name}}}, which is not set "
                "(set the variable where the file is read)"
            )
        values[(where, key)] = stored[(where, key)]
    return _with_secrets(doc, values)


def export_server(spec: VirtualServerSpec) -> ServerDoc:
    return ServerDoc(**spec.model_dump(exclude={"owner", "policy", "rate_limits", "transforms"}),
                     policy=spec.policy, rate_limits=spec.rate_limits, transforms=spec.transforms)


# -- the plan --------------------------------------------------------------------------------

Kind = Literal["team", "registry", "upstream", "server"]
Verb = Literal["create", "update", "delete"]


class Action(_Doc):
    verb: Verb
    kind: Kind
    name: str
    changes: tuple[str, ...] = ()
    """For an update: the fields that change (names only: values may be secrets)."""

    def line(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.verb]
        detail = f" ({', '.join(self.changes)})" if self.changes else ""
        return f"{sign} {self.kind} {self.name}{detail}"


_ORDER: tuple[Kind, ...] = ("team", "registry", "upstream", "server")


def changed_fields(current: BaseModel, desired: BaseModel) -> tuple[str, ...]:
    before, after = current.model_dump(mode="json"), desired.model_dump(mode="json")
    return tuple(k for k in after if before.get(k) != after[k])


def plan(
    current: Mapping[Kind, Mapping[str, BaseModel]],
    desired: Mapping[Kind, Mapping[str, BaseModel]],
    *,
    prune: bool,
) -> list[Action]:
    """Creates and updates in dependency order (teams, registries, upstreams, servers), then, with
    `prune`, deletes of what the document leaves out, in reverse order. Equal documents plan nothing."""
    actions: list[Action] = []
    for kind in _ORDER:
        have, want = current.get(kind, {}), desired.get(kind, {})
        for name in sorted(want):
            if name not in have:
                actions.append(Action(verb="create", kind=kind, name=name))
            else:
                changes = changed_fields(have[name], want[name])
                if changes:
                    actions.append(Action(verb="update", kind=kind, name=name, changes=changes))
    if prune:
        for kind in reversed(_ORDER):
            have, want = current.get(kind, {}), desired.get(kind, {})
            actions.extend(Action(verb="delete", kind=kind, name=n) for n in sorted(set(have) - set(want)))
    return actions
