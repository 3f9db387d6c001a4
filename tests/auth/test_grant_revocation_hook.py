"""Revoking an OAuth grant is stored before it is announced: with the change feed (Redis) down, /revoke
and reuse detection must not fail after the revocation took, and this replica's streams are still
re-checked at once (the other replicas' periodic pass ends theirs)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from bastion.app.shared import Shared, grant_revocation_hook
from bastion.core.errors import ServiceUnavailable

pytestmark = pytest.mark.anyio


class DownFeed:
    async def publish_revocation(self, token_id: str) -> None:
        raise ServiceUnavailable("the change feed is unavailable")


async def test_a_revoked_grant_the_feed_cannot_announce_is_still_rechecked_here(caplog: pytest.LogCaptureFixture) -> None:
    rechecked: list[str] = []
    shared: Any = SimpleNamespace(feed=DownFeed())
    hook = grant_revocation_hook(cast(Shared, shared), rechecked.append)
    await hook("sid:family-1")
    assert rechecked == ["sid:family-1"]
    assert any("could not be announced" in r.getMessage() for r in caplog.records)
