"""Composition: turn a virtual server's spec plus the catalog into what its clients see.

Pure and deterministic: the same catalog and spec always give the same view, in the same order.
The view is built once per change and then only read on the request path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.core.errors import BadRequest, NameCollision
from bastion.core.list_pages import ListPages
from bastion.core.models import CatalogItem, ItemKind, PrefixMode, Upstream, VirtualServerSpec
from bastion.core.naming import is_valid_tool_name
from bastion.core.ownership import Clash, assign, claim_order, shadowed
from bastion.core.policy import Caller, Policy
from bastion.core.search import ToolIndex
from bastion.core.transforms import ToolTransform, TransformError, apply_definition, check
from bastion.core.uri import UriMatcher, normalize_uri

_SPEC_FIELD: dict[ItemKind, str] = {
    "tool": "tools",
    "prompt": "prompts",
    "resource": "resources",
    "resource_template": "resources",
}


_X_MCP_HEADER = "x-mcp-header"


def _mentions(value: Any, key: str) -> bool:
    """Whether `key` appears as an object key anywhere in a JSON value."""
    if isinstance(value, dict):
        return key in value or any(_mentions(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, key) for v in value)
    return False


def exposed_name(item: CatalogItem, prefix: PrefixMode, transform: ToolTransform | None = None) -> str:
    """The name (tools, prompts) or URI (resources, templates, in normal form) a client sees for `item`."""
    if item.kind in ("resource", "resource_template"):
        return normalize_uri(item.key)
    if transform is not None and transform.name is not None:
        return transform.name
    if item.name_override is not None:
        return item.name_override
    if prefix == "always":
        return item.gateway_name
    # Exposed names are ASCII by the MCP name rules (prompts included): an original name that breaks
    # them (non-ASCII look-alikes, invisible or control characters) is shown as its cleaned gateway name.
    original = item.original_name
    return original if is_valid_tool_name(original) else item.gateway_name


def exposed_definition(item: CatalogItem, prefix: PrefixMode, transform: ToolTransform | None = None) -> dict[str, Any]:
    """The upstream's definition with Bastion's name and description (and the server's transform) applied."""
    definition = dict(item.definition)
    if item.description_override is not None:
        definition["description"] = item.description_override
    if transform is not None:
        definition = apply_definition(transform, definition)
    if item.kind in ("tool", "prompt"):
        definition["name"] = exposed_name(item, prefix, transform)
    return definition


@dataclass(frozen=True)
class ServerView:
    """A virtual server as its clients see it. Maps are keyed by exposed name or URI."""

    spec: VirtualServerSpec
    tools: Mapping[str, CatalogItem]
    prompts: Mapping[str, CatalogItem]
    resources: Mapping[str, CatalogItem]
    templates: Mapping[str, CatalogItem]
    disabled: frozenset[tuple[ItemKind, str]]
    upstreams: frozenset[str]
    lists: Mapping[ItemKind, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    list_keys: Mapping[ItemKind, tuple[str, ...]] = field(default_factory=dict)
    """The exposed name or URI of each entry of `lists`, in the same (sorted) order."""
    mirrored_tools: frozenset[str] = frozenset()
    """Tools whose input schema declares `x-mcp-header`: their calls carry Mcp-Param-* headers to check."""
    template_matcher: UriMatcher = field(default_factory=lambda: UriMatcher(()))
    """Templates in claim order: a URI two templates match goes to the one listed first."""
    clashes: tuple[Clash, ...] = ()
    """Items held out because another upstream already served their name or URI."""
    quarantined: Mapping[tuple[ItemKind, str], CatalogItem] = field(default_factory=dict)
    """Items held back by their upstream's pin (core/pinning.py), by (kind, exposed name or URI)."""
    transforms: Mapping[str, ToolTransform] = field(default_factory=dict)
    """The server's tool transforms by exposed tool name: calls are mapped back through them."""
    held: Mapping[str, str] = field(default_factory=dict)
    """Tools held because their transform no longer fits the upstream's definition: name -> why."""
    _restrictions: dict[Caller, Restriction] = field(default_factory=dict, compare=False, repr=False)
    _search: list[ToolIndex] = field(default_factory=list, compare=False, repr=False)
    _pages: list[ListPages] = field(default_factory=list, compare=False, repr=False)
    _filtered: dict[Policy, _Filtered] = field(default_factory=dict, compare=False, repr=False)

    def pages(self) -> ListPages:
        """The view's list pages, each encoded once (built on first use, once per view)."""
        if not self._pages:
            self._pages.append(ListPages(self.list_keys, self.lists))
        return self._pages[0]

    def tool_index(self) -> ToolIndex:
        """The search index of the server's tools (built on first use, once per view)."""
        if not self._search:
            self._search.append(ToolIndex(self.list_keys.get("tool", ()), self.lists.get("tool", ())))
        return self._search[0]

    @property
    def name(self) -> str:
        return self.spec.name

    def restricted(self, caller: Caller) -> Restriction | None:
        """What the server's policy lets `caller` see and use (None: no policy, everything).
        Built once per caller and view, so lists are not re-filtered per request."""
        policy = self.spec.policy
        if policy is None:
            return None
        found = self._restrictions.get(caller)
        if found is None:
            if len(self._restrictions) >= _RESTRICTION_CACHE:
                self._restrictions.clear()
            found = self._restrictions[caller] = self._restrict(policy.for_caller(caller), caller)
        return found

    def _restrict(self, policy: Policy, caller: Caller) -> Restriction:
        # Callers whose matching rules are the same see the same lists: those (and their encoded
        # pages) are shared, so a thousand callers of one team cost one filtered view.
        shared = self._filtered.get(policy)
        if shared is None:
            if len(self._filtered) >= _FILTERED_CACHE:
                # Restrictions hold their filtered view's pages: drop them too, or memory is not bounded.
                self._filtered.clear()
                self._restrictions.clear()
            shared = self._filtered[policy] = _filter(self, policy, caller)
        return Restriction(policy, caller, shared.lists, shared.list_keys, shared.pages)


_RESTRICTION_CACHE = 4096
_FILTERED_CACHE = 32
"""Filtered views kept per view: each may hold a full list encoded (about 3 MB for 10,000 tools)."""


@dataclass(frozen=True, slots=True)
class _Filtered:
    lists: Mapping[ItemKind, tuple[dict[str, Any], ...]]
    list_keys: Mapping[ItemKind, tuple[str, ...]]
    pages: ListPages


@dataclass(frozen=True, slots=True)
class Restriction:
    """A view filtered by policy for one caller: its lists, and the decision for any other name."""

    policy: Policy
    caller: Caller
    lists: Mapping[ItemKind, tuple[dict[str, Any], ...]]
    list_keys: Mapping[ItemKind, tuple[str, ...]]
    pages: ListPages

    def allows(self, kind: ItemKind, name: str) -> bool:
        return self.policy.allows(self.caller, kind, name)


def _filter(view: ServerView, policy: Policy, caller: Caller) -> _Filtered:
    """The view's lists as `policy` (already cut to the rules matching `caller`) lets it see them."""
    lists: dict[ItemKind, tuple[dict[str, Any], ...]] = {}
    keys: dict[ItemKind, tuple[str, ...]] = {}
    for kind, names in view.list_keys.items():
        kept = [i for i, name in enumerate(names) if policy.allows(caller, kind, name)]
        keys[kind] = tuple(names[i] for i in kept)
        lists[kind] = tuple(view.lists[kind][i] for i in kept)
    return _Filtered(lists, keys, ListPages(keys, lists))


def select_items(
    spec: VirtualServerSpec, items: Iterable[CatalogItem], upstreams: Mapping[str, Upstream]
) -> tuple[list[CatalogItem], list[str]]:
    """Items the spec names, plus every item of the upstreams it includes whole.

    Returns the items and the references that matched nothing (for the caller to refuse or log).
    """
    wanted = {"tools": set(spec.tools), "prompts": set(spec.prompts), "resources": set(spec.resources)}
    whole = set(spec.upstreams)
    found: set[tuple[str, str]] = set()
    chosen: list[CatalogItem] = []
    for item in items:
        field_name = _SPEC_FIELD[item.kind]
        if item.gateway_name in wanted[field_name]:
            found.add((field_name, item.gateway_name))
            chosen.append(item)
        elif item.upstream in whole:
            chosen.append(item)
    missing = [f"{f[:-1]} {n!r}" for f, names in wanted.items() for n in sorted(names) if (f, n) not in found]
    missing += [f"upstream {u!r}" for u in sorted(whole) if u not in upstreams]
    return chosen, missing


def compose(
    spec: VirtualServerSpec,
    items: Iterable[CatalogItem],
    upstreams: Mapping[str, Upstream],
    *,
    strict: bool,
) -> tuple[ServerView, list[str]]:
    """Build the view of `spec`. Returns it with a list of problems found.

    With `strict`, a reference to a missing item or upstream raises BadRequest and tools or prompts
    that would share an exposed name raise one NameCollision naming them all. Without it (a catalog
    refresh after the spec was accepted), the item that claimed the name first (core/ownership.py)
    keeps it and the others are held out and reported. Resources sharing a URI, or a URI under
    another upstream's earlier template, are never refused, only held out and reported the same way.
    """
    chosen, missing = select_items(spec, items, upstreams)
    if missing and strict:
        raise BadRequest(f"virtual server {spec.name!r} refers to unknown " + ", ".join(missing))
    problems = [f"unknown {m}" for m in missing]
    claims: dict[ItemKind, list[tuple[str, CatalogItem]]] = {k: [] for k in _SPEC_FIELD}
    disabled: set[tuple[ItemKind, str]] = set()
    held: dict[tuple[ItemKind, str], CatalogItem] = {}
    misfits: dict[str, str] = {}
    known_tools = {i.gateway_name for i in chosen if i.kind == "tool"}
    stray = sorted(set(spec.transforms) - known_tools)
    if stray:
        message = f"transforms name tools this server does not expose: {', '.join(map(repr, stray))}"
        if strict:
            raise BadRequest(message)
        problems.append(message)
    for item in chosen:
        upstream = upstreams.get(item.upstream)
        transform = spec.transforms.get(item.gateway_name) if item.kind == "tool" else None
        exposed = exposed_name(item, spec.prefix, transform)
        if transform is not None:
            try:
                check(transform, item.definition, item.gateway_name)
            except TransformError as exc:
                if strict:
                    raise
                problems.append(f"{exc.detail}; the tool is held")
                misfits[exposed] = exc.detail
                continue
        if not item.enabled or upstream is None or not upstream.spec.enabled:
            disabled.add((item.kind, exposed))
            continue
        if item.quarantined:
            held.setdefault((item.kind, exposed), item)
            continue
        claims[item.kind].append((exposed, item))
    by_kind: dict[ItemKind, dict[str, CatalogItem]] = {}
    clashes: list[Clash] = []
    for kind, offered in claims.items():
        by_kind[kind], found = assign(kind, offered)
        clashes += found
    # Tools and prompts that would share a name are refused when a server is saved; later (the
    # catalog changed) the first owner keeps the name. Resources sharing a URI are never refused:
    # URIs are the upstream's own, so refusing would make such upstreams impossible to combine.
    collisions = [c.message() for c in clashes if c.kind in ("tool", "prompt")]
    if collisions and strict:
        raise NameCollision("; ".join(collisions), collisions=collisions)
    templates = by_kind["resource_template"]
    matcher = UriMatcher(sorted(templates, key=lambda t: claim_order(templates[t])))
    for uri, item in list(by_kind["resource"].items()):
        template = matcher.match(uri)
        clash = shadowed(item, uri, templates[template] if template is not None else None)
        if clash is not None:
            del by_kind["resource"][uri]
            clashes.append(clash)
    problems += [c.message() for c in clashes]
    served = {(kind, name) for kind, bucket in by_kind.items() for name in bucket}
    disabled -= served
    list_keys = {kind: tuple(sorted(bucket)) for kind, bucket in by_kind.items()}
    lists = {
        kind: tuple(
            exposed_definition(bucket[n], spec.prefix, spec.transforms.get(bucket[n].gateway_name) if kind == "tool" else None)
            for n in list_keys[kind]
        )
        for kind, bucket in by_kind.items()
    }
    view = ServerView(
        spec=spec,
        tools=by_kind["tool"],
        prompts=by_kind["prompt"],
        resources=by_kind["resource"],
        templates=templates,
        disabled=frozenset(disabled),
        upstreams=frozenset(i.upstream for b in by_kind.values() for i in b.values()),
        lists=lists,
        list_keys=list_keys,
        mirrored_tools=frozenset(n for n, i in by_kind["tool"].items() if _mentions(i.definition.get("inputSchema"), _X_MCP_HEADER)),
        template_matcher=matcher,
        clashes=tuple(clashes),
        quarantined={k: v for k, v in held.items() if k not in served},
        transforms={
            n: spec.transforms[i.gateway_name] for n, i in by_kind["tool"].items() if i.gateway_name in spec.transforms
        },
        held={n: why for n, why in misfits.items() if n not in by_kind["tool"]},
    )
    return view, problems
