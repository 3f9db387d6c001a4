"""Attack class: an entry point that skips authentication (issue 9, finding 11).

Authentication is a pipeline stage, not an edge pre-check each entry point must remember: a call
reaches an upstream only with a credential the pipeline itself verified and held to its grants for
that virtual server, whatever principal the entry point claims. The edge's early check (for HTTP's
401 and its OAuth headers) and the stage share one verification per request.
"""

from __future__ import annotations

from typing import Any

import pytest

from bastion.core.errors import Forbidden, Unauthenticated
from bastion.core.grants import Grants
from bastion.core.models import CatalogItem, Discovery, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.ports import CallHooks
from bastion.core.snapshot import build_snapshot
from bastion.pipeline.authn import Authenticator
from bastion.pipeline.build import build_pipeline
from bastion.pipeline.context import CallContext, Credential, Principal

pytestmark = pytest.mark.anyio

ADMIN = Principal(id="admin", kind="admin", role="admin")
VS1_TOKEN = Principal(
    id="token:t1", kind="token", grants=Grants(frozenset({"vs1"}), frozenset({"mcp"})), token="t1"
)


class Upstreams:
    """Records what reached the upstream."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def request(
        self, upstream: str, method: str, params: dict[str, Any], *, user: str | None, timeout: float, hooks: CallHooks | None = None,
        caller: str | None = None, client: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append((upstream, method, params))
        return {"content": [{"type": "text", "text": "reached"}]}

    async def discover(self, spec: UpstreamSpec) -> Discovery:
        raise NotImplementedError

    def asks_mid_call(self, upstream: str) -> bool:
        return False


class Tokens:
    """A verifier that knows two bearer tokens and counts its work."""

    def __init__(self) -> None:
        self.verified = 0

    async def verify(self, authorization: str | None, client_ip: str | None) -> Principal:
        self.verified += 1
        known = {"Bearer admin": ADMIN, "Bearer vs1": VS1_TOKEN}
        if authorization not in known:
            raise Unauthenticated("invalid token")
        return known[authorization]


def snapshot() -> Any:
    echo = CatalogItem(
        upstream="fx", kind="tool", key="echo", gateway_name="fx__echo", definition={"name": "echo", "inputSchema": {}}
    )
    upstream = Upstream(spec=UpstreamSpec(name="fx", transport="stdio", command="x", pin="off"))
    specs = [VirtualServerSpec(name=name, upstreams=("fx",)) for name in ("vs1", "vs2")]
    built = build_snapshot([upstream], [echo], specs)
    return lambda: built


@pytest.fixture
def parts() -> tuple[Any, Upstreams, Tokens, Authenticator]:
    upstreams, tokens = Upstreams(), Tokens()
    authenticator = Authenticator(tokens)
    pipeline = build_pipeline(snapshot(), upstreams, authenticator, timeout=5, server_info={"name": "bastion"})
    return pipeline, upstreams, tokens, authenticator


def call(server: str, credential: Credential | None, principal: Principal | None = None) -> CallContext:
    params = {"name": "fx__echo", "arguments": {}}
    return CallContext(server=server, method="tools/call", params=params, credential=credential, principal=principal)


async def test_a_claimed_principal_without_a_credential_reaches_nothing(parts: Any) -> None:
    pipeline, upstreams, _, _ = parts
    with pytest.raises(Unauthenticated):
        await pipeline(call("vs1", None, principal=ADMIN))
    assert upstreams.calls == []


async def test_a_claimed_principal_is_replaced_by_the_verified_one(parts: Any) -> None:
    pipeline, upstreams, _, _ = parts
    forged = call("vs2", Credential("Bearer vs1", "127.0.0.1"), principal=ADMIN)
    with pytest.raises(Forbidden):  # the token's grants name vs1 only
        await pipeline(forged)
    assert upstreams.calls == []
    with pytest.raises(Unauthenticated):
        await pipeline(call("vs1", Credential("Bearer stolen-guess", "127.0.0.1"), principal=ADMIN))
    assert upstreams.calls == []


async def test_a_credential_verified_at_the_edge_is_not_verified_again(parts: Any) -> None:
    pipeline, upstreams, tokens, authenticator = parts
    credential = Credential("Bearer vs1", "127.0.0.1")
    assert await authenticator.principal(credential) == VS1_TOKEN  # the edge's early check
    result = await pipeline(call("vs1", credential))
    assert result["content"][0]["text"] == "reached"
    assert tokens.verified == 1
    assert len(upstreams.calls) == 1


async def test_a_verification_by_another_authenticator_counts_for_nothing(parts: Any) -> None:
    pipeline, upstreams, tokens, _ = parts
    credential = Credential("Bearer nobody", None, verified=(object(), ADMIN))
    with pytest.raises(Unauthenticated):
        await pipeline(call("vs1", credential))
    assert upstreams.calls == [] and tokens.verified == 1

