"""The stdio launch guard: checked before every start of a stdio child (registration, update, each
reconnect), so a non-admin's stored command that is no longer allowed never runs again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bastion.core.identity import User
from bastion.core.launch import CommandRule, check_launch
from bastion.core.models import UpstreamSpec

UserLookup = Callable[[str], Awaitable[User | None]]


class LaunchGuard:
    def __init__(self, rules: tuple[CommandRule, ...], user: UserLookup) -> None:
        self._rules = rules
        self._user = user

    async def check(self, spec: UpstreamSpec) -> None:
        """Raise Forbidden unless `spec`'s owner may have the host run it.

        No owner: registered with the admin token or by the operator (trusted). An owner is trusted
        while they are an active admin; anyone else gets the allow-list."""
        if spec.transport != "stdio" or spec.owner is None:
            return
        owner = await self._user(spec.owner)
        if owner is not None and owner.active and owner.role == "admin":
            return
        check_launch(spec, self._rules)
