"""Check and translate the subjects of a virtual server's policy: stored by stable id, shown by email."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from bastion.core.errors import BadRequest
from bastion.core.policy import Directory, Policy, resolve_subjects, shown_subjects
from bastion.core.ports import ConfigRepo, IdentityRepo


class PolicySubjects:
    """`external`: an OIDC identity provider names users and teams Bastion keeps no record of."""

    def __init__(self, identity: IdentityRepo, repo: ConfigRepo, *, external: bool) -> None:
        self._identity = identity
        self._repo = repo
        self._external = external

    async def resolve(self, policy: Policy | None, also_teams: Iterable[str] = ()) -> Policy | None:
        """Emails to ids; BadRequest (400) naming every user, team or token that does not exist
        (`also_teams`: teams about to be created with it, by a configuration import)."""
        if policy is None or not any(r.users or r.teams or r.tokens for r in policy.rules):
            return policy
        now = datetime.now(UTC)
        directory = Directory(
            users={u.email: u.id for u in await self._identity.list_users()},
            teams=frozenset(t.name for t in await self._identity.list_teams()) | frozenset(also_teams),
            tokens=frozenset(t.id for t in await self._repo.list_api_tokens() if t.revoked_at is None and not t.expired(now)),
            external=self._external,
        )
        try:
            return resolve_subjects(policy, directory)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    async def emails(self) -> dict[str, str]:
        """Each user id's email, for showing policies."""
        return {u.id: u.email for u in await self._identity.list_users()}

    @staticmethod
    def shown(policy: Policy, emails: dict[str, str]) -> Policy:
        return shown_subjects(policy, emails)
