"""A REST API described by an OpenAPI document, as an upstream whose operations are tools.

Discovery reads the document (at the upstream's `url`, or inline; JSON or YAML) and turns each
selected operation into a tool (core/openapi_ops.py). A call becomes one HTTP request through
`outbound.fetch` with the upstream's credentials (sealed headers, a query API key, or a bearer
token from OAuth); a non-2xx answer is a tool result with `isError`, the status and an excerpt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx2
import yaml

from bastion.core.destinations import check_destinations, origins, unapproved
from bastion.core.errors import (
    BadRequest,
    UnapprovedDestination,
    UnusableDocument,
    UpstreamProtocolError,
    UpstreamRpcError,
)
from bastion.core.models import Discovery, OpenApiSource, QueryApiKey, UpstreamSpec
from bastion.core.openapi_ops import ArgumentError, Operation, form_fields, http_call, is_form, operations, server_url
from bastion.core.openapi_refs import MAX_DOCUMENT_DEPTH, MULTIPART, SpecError, too_deep
from bastion.core.openapi_styles import cookie_names
from bastion.core.openapi_swagger import as_openapi3
from bastion.core.ports import CallHooks
from bastion.core.safe_patterns import UnsafeMatch
from bastion.core.surrogates import NotUnicode, TooDeep, not_unicode, strict_loads, yaml_surrogate
from bastion.core.yaml_text import AliasBomb, load_yaml
from bastion.upstream.discovery import name_items
from bastion.upstream.guard import AddressGuard
from bastion.upstream.outbound import ResponseTooLarge, fetch

log = logging.getLogger("bastion.upstream")
BearerFor = Callable[[str | None], Awaitable[str | None]]
"""The bearer token to send for a call made for `user` (None when the upstream uses none)."""
EXCERPT = 2000
MAX_SPEC_BYTES = 32 * 1024 * 1024


def parse_document(raw: bytes | str, what: str) -> dict[str, Any]:
    """An OpenAPI document from JSON or YAML text."""
    try:
        doc, found = strict_loads(raw, what), None
    except NotUnicode as exc:  # its text would become tool names and descriptions, stored and sent on
        raise UpstreamProtocolError(str(exc)) from None
    except TooDeep:
        raise UnusableDocument(f"{what} nests deeper than {MAX_DOCUMENT_DEPTH} levels") from None
    except ValueError:
        try:
            doc = load_yaml(raw)
        except (yaml.YAMLError, RecursionError):
            raise UnusableDocument(f"{what} is neither JSON nor YAML") from None
        except AliasBomb as exc:
            raise UnusableDocument(f"{what}: {exc}") from None
        doc, found = yaml_surrogate(raw, doc)  # YAML reads an escaped pair as two surrogates
    if found is not None:
        raise not_unicode(what, found, "holds")
    if not isinstance(doc, dict):
        raise UnusableDocument(f"{what} is not an OpenAPI document (not an object)")
    if too_deep(doc):  # stored (inline) and walked recursively: as deep as a request body may nest
        raise UnusableDocument(f"{what} nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    return doc


def base_url_of(doc: dict[str, Any], source: OpenApiSource, spec_url: str | None) -> str:
    """The API's base: `base_url`, else the document's first server (relative to the spec's URL)."""
    if source.base_url:
        return source.base_url.rstrip("/")
    url = server_url(doc.get("servers"))
    if url is not None and (absolute := _absolute(url, spec_url)) is not None:
        return absolute
    if spec_url:
        parts = urlsplit(spec_url)
        return f"{parts.scheme}://{parts.netloc}"
    raise BadRequest("the OpenAPI document names no server: give the upstream a 'base_url'")


def _absolute(url: str, against: str | None) -> str | None:
    """A server's URL made absolute against `against` (the document's URL), if it is then http(s)."""
    try:
        if against:
            url = urljoin(against, url)
        usable = urlsplit(url).scheme in ("http", "https")
    except ValueError:  # e.g. a bracketed host that is no IPv6 address
        usable = False
    return url.rstrip("/") if usable else None


def result_of(
    status: int, reason: str, content_type: str, body: bytes, op: Operation, what: str = "the API"
) -> dict[str, Any]:
    """The tool result for an HTTP answer: 2xx as text (and structured, for a JSON object when the
    tool has an output schema), anything else as an error result with the status and an excerpt.
    Structured content with a lone surrogate (an escape in the JSON) is the upstream's protocol error."""
    text = body.decode("utf-8", errors="replace")
    if not 200 <= status < 300:
        excerpt = text[:EXCERPT] + ("…" if len(text) > EXCERPT else "")
        message = f"HTTP {status} {reason}".strip() + (f": {excerpt}" if excerpt else "")
        return {"content": [{"type": "text", "text": message}], "isError": True}
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}] if text else []}
    if "json" in content_type and "outputSchema" in op.definition:
        try:
            parsed = strict_loads(text, what, "answered with")
        except NotUnicode as exc:
            raise UpstreamProtocolError(str(exc)) from None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            result["structuredContent"] = parsed
    return result


class OpenApiUpstream:
    """One REST upstream: its operations (from the last discovery) and how to call them."""

    def __init__(
        self,
        spec: UpstreamSpec,
        http: httpx2.AsyncClient,
        guard: AddressGuard | None,
        bearer_for: BearerFor,
        *,
        timeout: float,
        max_response_bytes: int,
        max_operations: int | None = None,
    ) -> None:
        self.spec = spec
        reserved = {("header", name.lower()) for name in spec.headers}
        reserved |= {("cookie", name) for key, value in spec.headers.items() if key.lower() == "cookie" for name in cookie_names(value)}
        if isinstance(spec.auth, QueryApiKey):
            reserved.add(("query", spec.auth.name))
        self._reserved = frozenset(reserved)
        """The parameters the operator's credentials set, which no caller may set: not offered in the
        tools' schemas, and dropped from a call's request if its arguments make them anyway (a cookie
        the operator's Cookie header sets included)."""
        self._source = spec.openapi or OpenApiSource()
        self._http = http
        self._guard = guard
        self._bearer_for = bearer_for
        self._timeout = timeout
        self._max_response = max_response_bytes
        self._max_operations = max_operations
        self._ops: dict[str, Operation] | None = None
        self._told: frozenset[str] = frozenset()  # what the last discovery left out, as logged
        self._base = ""
        self._refused: UnapprovedDestination | None = None

    @property
    def _what(self) -> str:
        return f"upstream {self.spec.name!r}"

    async def _document(self) -> dict[str, Any]:
        if self._source.spec is not None:
            return dict(self._source.spec)
        if not self.spec.url:
            raise BadRequest(f"{self._what} needs the URL of its OpenAPI document, or the document inline")
        request = self._http.build_request("GET", self.spec.url, headers={"Accept": "application/json, application/yaml"})
        fetched = await fetch(
            self._http, self._guard, request, what=f"{self._what}'s OpenAPI document",
            deadline=self._timeout, max_bytes=MAX_SPEC_BYTES,
        )
        if fetched.status != 200:
            raise UpstreamProtocolError(f"{self._what}'s OpenAPI document answered HTTP {fetched.status}")
        return parse_document(fetched.body, f"{self._what}'s OpenAPI document")

    def _base_for(self, op: Operation, base: str) -> str:
        """Where `op` is served: its own server (relative to the document's URL, else to the API's
        `base`), unless the operator set `base_url`, which stands for every operation."""
        if op.server is None or self._source.base_url:
            return base
        against = self.spec.url if self._source.spec is None else base + "/"
        return _absolute(op.server, against) or base

    async def discover(self) -> Discovery:
        """(Re-)read the document; every selected operation becomes a tool, except those that cannot
        be sent as they mean or are too large, each listed in `skipped` with why (as are the header
        parameters a proxy sets, which no tool offers)."""
        original = await self._document()
        skipped: list[str] = []
        try:
            doc = as_openapi3(original)
            ops = operations(
                doc, self._source.include, self._source.exclude, reserved=self._reserved, limit=self._max_operations,
                skipped=skipped,
            )
        except SpecError as exc:
            raise UnusableDocument(f"{self._what}: {exc}") from None
        base = base_url_of(doc, self._source, self.spec.url if self._source.spec is None else None)
        targets = [self._base_for(op, base) for op in ops]
        if self._ops is None:  # nothing served yet (say, since a restart): what stays where it was approved is
            kept = [op for op, url in zip(ops, targets, strict=True) if not unapproved([url], self.spec.destinations)]
            self._base, self._ops = base, {op.tool: op for op in kept}
        # Before the moved operations are used: until an admin approves, calls keep going where they went.
        try:
            check_destinations(self.spec.name, targets, self.spec.destinations, f"the OpenAPI document of {self._what}")
        except UnapprovedDestination as exc:
            self._refused = exc  # the answer to a call of an operation it moved
            raise
        self._base, self._ops, self._refused = base, {op.tool: op for op in ops}, None
        for reason in skipped:  # health checks rediscover: only what a discovery newly leaves out is logged
            if reason not in self._told:
                log.info("%s: left out %s", self._what, reason)
        self._told = frozenset(skipped)
        raw_info = doc.get("info")
        info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
        return Discovery(
            items=tuple(name_items(self.spec.name, "tool", "name", [op.definition for op in ops])),
            server_name=str(info.get("title")) if info.get("title") else None,
            server_version=str(info.get("version")) if info.get("version") else None,
            protocol_version=f"swagger-{original['swagger']}" if "swagger" in original else f"openapi-{doc.get('openapi')}",
            skipped=tuple(skipped),
            destinations=origins(targets),
        )

    async def rediscover(self) -> Discovery:
        """Discover again, the document having been accepted once: one that went bad since is the
        upstream's fault (502), not the caller's (UnusableDocument, 422)."""
        try:
            return await self.discover()
        except UnusableDocument as exc:
            raise UpstreamProtocolError(f"the OpenAPI document of {self._what} can no longer be used: {exc.detail}") from None

    async def request(
        self, method: str, params: dict[str, Any] | None, *, user: str | None, timeout: float, hooks: CallHooks | None = None
    ) -> dict[str, Any]:
        if method != "tools/call":
            raise UpstreamRpcError(f"a REST upstream serves tools only, not {method}", -32601)
        if self._ops is None:
            with suppress(UnapprovedDestination):  # what stays where it was approved is served still
                await self.rediscover()
        assert self._ops is not None
        name = str((params or {}).get("name"))
        op = self._ops.get(name)
        if op is None and self._refused is not None:
            raise self._refused
        if op is None:
            raise UpstreamRpcError(f"{self._what} has no operation {name!r} (any more)", -32602)
        arguments = (params or {}).get("arguments") or {}
        try:
            call = http_call(op, arguments if isinstance(arguments, dict) else {})
        except (ArgumentError, UnsafeMatch) as exc:
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        # What the caller's arguments make (an exploded object parameter may name any key) never
        # replaces or stands beside what the operator set: their credentials.
        headers = {k: v for k, v in call.headers.items() if ("header", k.lower()) not in self._reserved}
        headers.update({**self.spec.headers, "Accept": "application/json, */*;q=0.5"})
        cookies = [c for c in call.cookies if not ({("cookie", n) for n in cookie_names(c)} & self._reserved)]
        if cookies:  # beside the operator's cookies, if any, never in their place
            key = next((k for k in headers if k.lower() == "cookie"), "Cookie")
            headers[key] = "; ".join([headers[key], *cookies] if key in headers else cookies)
        query: list[tuple[str, str | int | float | bool | None]] = [p for p in call.query if ("query", p[0]) not in self._reserved]
        auth = self.spec.auth
        if isinstance(auth, QueryApiKey):
            query.append((auth.name, auth.value))
        bearer = await self._bearer_for(user)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        content: bytes | None = None
        files: list[tuple[str, tuple[str | None, bytes]]] | None = None
        if call.json_body is not None and call.media_type == MULTIPART:
            # A file part gets a filename (its field's name); plain fields none. httpx sets the boundary.
            files = [(k, (k if k in op.file_fields else None, v.encode())) for k, v in form_fields(call.json_body)]
        elif call.json_body is not None and is_form(call.media_type):
            content = urlencode(form_fields(call.json_body, op.form_styles)).encode()
        elif call.json_body is not None:
            content = json.dumps(call.json_body).encode()
        elif call.raw_body is not None:
            content = call.raw_body.encode()
        if content is not None:
            headers["Content-Type"] = call.media_type or "application/json"
        url = self._base_for(op, self._base) + call.path
        if unapproved([url], self.spec.destinations):  # checked at discovery too: never sent, whatever changed
            return {"content": [{"type": "text", "text": f"{self._what} may not send {name!r} there: not an approved origin"}], "isError": True}
        request = self._http.build_request(
            call.method, url, params=query, headers=headers, content=content, files=files or None
        )
        try:
            fetched = await fetch(
                self._http, self._guard, request, what=self._what, deadline=timeout, max_bytes=self._max_response,
                redirects="none" if isinstance(auth, QueryApiKey) else "same-origin",
            )
        except ResponseTooLarge as exc:
            return {"content": [{"type": "text", "text": exc.detail}], "isError": True}
        return result_of(fetched.status, fetched.reason, fetched.headers.get("content-type", ""), fetched.body, op, self._what)
