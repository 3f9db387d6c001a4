"""MCP Registry documents (server.json, schema 2025-12-11): checking them and turning one into an upstream.

Pure: a document in, an `UpstreamSpec` (or a clear BadRequest) out. Remotes become streamable-HTTP or
SSE upstreams; npm, pypi and oci packages with a stdio transport become stdio upstreams (`npx -y`,
`uvx`, `docker run -i`). Declared environment variables and headers are filled from the installer's
values (sealed by the vault like any upstream credential); required ones without a value refuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field

from bastion.core.errors import BadRequest
from bastion.core.models import RegistryOrigin, Transport, UpstreamSpec
from bastion.core.values import Frozen, small_int

SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
NAME_RE = re.compile(r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$")
REMOTE_TYPES: tuple[Transport, ...] = ("streamable-http", "sse")
PACKAGE_TYPES = ("npm", "pypi", "oci")
MAX_NAME = 200
MAX_VERSION = 255
"""The longest name and version a registry entry is cached with (the registry_entries columns)."""
Prefer = Literal["remote", "package"]

PackageCommand = Callable[[Mapping[str, Any]], tuple[str, list[str]]]
"""Command and leading arguments that run a package (before its package arguments)."""


class Requirement(Frozen):
    """One value an installer may or must give: an environment variable, a header, or an argument."""

    name: str
    target: Literal["env", "header", "argument"]
    required: bool = False
    secret: bool = False
    description: str | None = None
    default: str | None = None
    choices: tuple[str, ...] = ()


class InstallPlan(Frozen):
    spec: UpstreamSpec
    requirements: tuple[Requirement, ...] = Field(default_factory=tuple)


def _fail(where: str, what: str) -> BadRequest:
    return BadRequest(f"{where}: {what}")


def check_server(doc: Any, where: str = "server.json") -> dict[str, Any]:
    """The document if it is a usable server.json; BadRequest naming the first problem otherwise."""
    if not isinstance(doc, dict):
        raise _fail(where, "a server.json document must be a JSON object")
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
        raise _fail(where, "'name' must look like 'namespace/server' (reverse-DNS namespace, one slash)")
    for key in ("version", "description"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise _fail(where, f"{name}: {key!r} must be a non-empty string")
    if len(doc["version"]) > MAX_VERSION:
        raise _fail(where, f"{name}: 'version' must be at most {MAX_VERSION} characters")
    if doc["version"] == "latest":
        raise _fail(where, f"{name}: 'version' must be a specific version, not 'latest'")
    for i, package in enumerate(_list(doc, "packages", where)):
        at = f"{name}: packages[{i}]"
        if not isinstance(package, dict):
            raise _fail(where, f"{at} must be an object")
        for key in ("registryType", "identifier"):
            if not isinstance(package.get(key), str) or not package[key]:
                raise _fail(where, f"{at}.{key} must be a non-empty string")
        transport = package.get("transport")
        if not isinstance(transport, dict) or not isinstance(transport.get("type"), str):
            raise _fail(where, f"{at}.transport must be an object with a 'type'")
        for key in ("environmentVariables", "packageArguments", "runtimeArguments"):
            _inputs(package, key, f"{where}: {at}")
    for i, remote in enumerate(_list(doc, "remotes", where)):
        at = f"{name}: remotes[{i}]"
        if not isinstance(remote, dict) or remote.get("type") not in REMOTE_TYPES:
            raise _fail(where, f"{at}.type must be one of {', '.join(REMOTE_TYPES)}")
        if not isinstance(remote.get("url"), str) or not remote["url"].startswith(("http://", "https://")):
            raise _fail(where, f"{at}.url must be an http(s) URL")
        _inputs(remote, "headers", f"{where}: {at}")
    return doc


def _list(doc: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise _fail(where, f"{key!r} must be a list")
    return value


def _inputs(holder: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = holder.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _fail(where, f"{key!r} must be a list of objects")
    for entry in value:
        if key != "packageArguments" and key != "runtimeArguments" and not isinstance(entry.get("name"), str):
            raise _fail(where, f"every entry of {key!r} needs a 'name'")
    return value


def _requirement(entry: Mapping[str, Any], target: Literal["env", "header", "argument"]) -> Requirement:
    name = entry.get("name") or entry.get("valueHint") or ""
    default = entry.get("default")
    return Requirement(
        name=str(name), target=target, required=bool(entry.get("isRequired", False)),
        secret=bool(entry.get("isSecret", False)),
        description=entry.get("description") if isinstance(entry.get("description"), str) else None,
        default=default if isinstance(default, str) else None,
        choices=tuple(c for c in entry.get("choices", []) if isinstance(c, str)),
    )


def _fill(entries: list[dict[str, Any]], target: Literal["env", "header"], values: Mapping[str, str],
          missing: list[str]) -> dict[str, str]:
    """Name -> value for declared env vars / headers: given, else fixed, else default; required ones must be set."""
    out: dict[str, str] = {}
    for entry in entries:
        name = str(entry["name"])
        value = values.get(name, entry.get("value") if isinstance(entry.get("value"), str) else entry.get("default"))
        if isinstance(value, str) and value != "":
            out[name] = _substitute(value, entry, values)
        elif entry.get("isRequired"):
            missing.append(f"{target} {name}")
    return out


def _substitute(value: str, entry: Mapping[str, Any], values: Mapping[str, str]) -> str:
    """`{var}` in a fixed value, from the installer's values or the variable's default."""
    variables = entry.get("variables") if isinstance(entry.get("variables"), dict) else {}

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        var = variables.get(key) if isinstance(variables, dict) else None
        default = var.get("default") if isinstance(var, dict) else None
        found = values.get(key, default)
        return found if isinstance(found, str) else match.group(0)

    return re.sub(r"\{([A-Za-z0-9_.-]+)\}", one, value)


def _arguments(entries: list[dict[str, Any]], values: Mapping[str, str], missing: list[str]) -> list[str]:
    out: list[str] = []
    for entry in entries:
        kind = entry.get("type")
        key = str(entry.get("valueHint") or entry.get("name") or "")
        value = values.get(key, entry.get("value") if isinstance(entry.get("value"), str) else entry.get("default"))
        if not isinstance(value, str):
            if entry.get("isRequired"):
                missing.append(f"argument {key}")
            continue
        value = _substitute(value, entry, values)
        out += [str(entry["name"]), value] if kind == "named" else [value]
    return out


def default_package_command(package: Mapping[str, Any]) -> tuple[str, list[str]]:
    """`npx -y id@version`, `uvx id==version`, `docker run -i --rm [-e NAME ...] image:tag`."""
    kind, ident, version = package["registryType"], package["identifier"], package.get("version")
    if kind == "npm":
        return "npx", ["-y", f"{ident}@{version}" if version else ident]
    if kind == "pypi":
        return "uvx", [f"{ident}=={version}" if version else ident]
    if kind == "oci":
        image = ident if version is None or ":" in ident.rsplit("/", 1)[-1] or "@" in ident else f"{ident}:{version}"
        forwarded = [a for e in package.get("environmentVariables", []) for a in ("-e", str(e["name"]))]
        return "docker", ["run", "-i", "--rm", *forwarded, image]
    raise BadRequest(f"packages of type {kind!r} cannot be installed; supported: {', '.join(PACKAGE_TYPES)}")


def requirements(doc: Mapping[str, Any], prefer: Prefer | None = None) -> tuple[Requirement, ...]:
    """What the installer may or must give for the entry's chosen remote or package."""
    kind, chosen = choose(doc, prefer)
    if kind == "remote":
        return tuple(_requirement(h, "header") for h in chosen.get("headers", []))
    env = [_requirement(e, "env") for e in chosen.get("environmentVariables", [])]
    args = [
        _requirement(a, "argument")
        for a in (*chosen.get("runtimeArguments", []), *chosen.get("packageArguments", []))
        if not isinstance(a.get("value"), str)
    ]
    return tuple(env + args)


def choose(doc: Mapping[str, Any], prefer: Prefer | None) -> tuple[Prefer, dict[str, Any]]:
    """The remote or stdio package to install: a remote first unless `prefer` says package."""
    remotes = [r for r in doc.get("remotes", []) if r.get("type") in REMOTE_TYPES]
    packages = [
        p for p in doc.get("packages", [])
        if p.get("registryType") in PACKAGE_TYPES and p.get("transport", {}).get("type") == "stdio"
    ]
    remotes.sort(key=lambda r: r["type"] != "streamable-http")
    if prefer != "package" and remotes:
        return "remote", remotes[0]
    if prefer != "remote" and packages:
        return "package", packages[0]
    wanted = {"remote": "a streamable-http or sse remote", "package": "an npm, pypi or oci package run over stdio"}
    what = wanted[prefer] if prefer else f"{wanted['remote']} or {wanted['package']}"
    raise BadRequest(f"registry entry {doc.get('name')!r} has no {what} to install")


def plan_install(
    doc: Mapping[str, Any],
    *,
    upstream: str,
    origin: RegistryOrigin,
    values: Mapping[str, str],
    prefer: Prefer | None = None,
    package_command: PackageCommand = default_package_command,
) -> InstallPlan:
    """The upstream a registry entry becomes; BadRequest naming every required value that is missing
    (names only: values are never echoed) or an unknown value given."""
    kind, chosen = choose(doc, prefer)
    needs = requirements(doc, prefer)
    known = {r.name for r in needs}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadRequest(f"registry entry {doc['name']!r} declares no input named {', '.join(unknown)}")
    missing: list[str] = []
    if kind == "remote":
        headers = _fill(chosen.get("headers", []), "header", values, missing)
        spec = UpstreamSpec(name=upstream, transport=chosen["type"], url=chosen["url"], headers=headers, origin=origin)
    else:
        env = _fill(chosen.get("environmentVariables", []), "env", values, missing)
        command, lead = package_command(chosen)
        runtime = _arguments(chosen.get("runtimeArguments", []), values, missing)
        package_args = _arguments(chosen.get("packageArguments", []), values, missing)
        if chosen["registryType"] == "oci":  # docker run [runtime args] ... image [package args]
            args = [*lead[:3], *runtime, *lead[3:], *package_args]
        else:
            args = [*runtime, *lead, *package_args]
        spec = UpstreamSpec(name=upstream, transport="stdio", command=command, args=tuple(args), env=env, origin=origin)
    if missing:
        raise BadRequest(
            f"registry entry {doc['name']!r} needs values for: {', '.join(missing)}", missing=missing
        )
    return InstallPlan(spec=spec, requirements=needs)


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Sort key that orders `1.10.0` after `1.9.2` (numbers numerically, anything else as text)."""
    parts = re.split(r"[.+-]", version)
    return tuple((-1, p) if (n := small_int(p, 64)) is None else (n, "") for p in parts)
