"""Where a REST or A2A upstream may send its stored credentials: the origins the operator approved.

An OpenAPI document (each operation's `servers`) or an A2A agent card (its interface's `url`) says
where calls go, and whoever hosts it may change it at any refresh. The origins it named when the
operator registered or last edited the upstream are approved (`UpstreamSpec.destinations`); a
later document or card that sends calls anywhere else is refused until an admin approves. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from bastion.core.credential_moves import same_destination
from bastion.core.errors import UnapprovedDestination
from bastion.core.models import Discovery, UpstreamSpec

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an absolute URL, lowercased, without a default port or user info
    (an unparseable URL is its own, never approved, origin)."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return url
    if ":" in host:
        host = f"[{host}]"
    shown_port = "" if port is None or port == _DEFAULT_PORTS.get(scheme) else f":{port}"
    return f"{scheme}://{host}{shown_port}"


def origins(urls: Iterable[str]) -> tuple[str, ...]:
    """The distinct origins of `urls`, sorted."""
    return tuple(sorted({origin_of(u) for u in urls}))


def unapproved(found: Iterable[str], approved: Iterable[str]) -> list[str]:
    """The origins of `found` (URLs) outside `approved`; none when nothing is approved yet (a first
    discovery, whose origins the operator's registration approves)."""
    allowed = set(approved)
    if not allowed:
        return []
    return sorted({origin_of(u) for u in found} - allowed)


def check_destinations(upstream: str, found: Iterable[str], approved: Iterable[str], what: str) -> None:
    """Raise UnapprovedDestination when `found` (URLs that `what` sends calls to) leaves `approved`."""
    new = unapproved(found, approved)
    if new:
        raise UnapprovedDestination(
            f"{what} now sends calls, with the stored credentials of upstream {upstream!r}, to "
            f"{', '.join(new)}, which was not approved; nothing is sent there. An admin approves it by "
            f"editing the upstream (PATCH /api/v1/upstreams/{upstream} with its 'destinations')."
        )


def approving(spec: UpstreamSpec, discovery: Discovery) -> UpstreamSpec:
    """`spec` with the origins `discovery` sends calls to approved, when none are yet: its operator
    registered it, or changed where it sends credentials (or it was saved before origins were kept)."""
    if spec.destinations or not discovery.destinations:
        return spec
    return spec.model_copy(update={"destinations": discovery.destinations})


def keeping_approved(old: UpstreamSpec, new: UpstreamSpec) -> UpstreamSpec:
    """`new` (an edit of `old`) with `old`'s approved origins while its credentials go where they went
    and no admin named others; a changed destination is approved anew by its discovery."""
    if new.destinations or not same_destination(old, new):
        return new
    return new.model_copy(update={"destinations": old.destinations})
