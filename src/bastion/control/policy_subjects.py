"""Check and translate the subjects of a virtual server's policy: stored by stable id, shown by email.

Whoever saves or reads a policy learns only of the users, teams and tokens they may see: for
anyone but an admin, a subject they may not see is answered exactly as one that does not exist,
and a user id they may not see is shown as the id, never as its email."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from bastion.core.errors import BadRequest
from bastion.core.identity import Actor, can_see_user, sees_everyone
from bastion.core.policy import Directory, Policy, resolve_subjects, shown_subjects
from bastion.core.ports import ConfigRepo, IdentityRepo


def _named(policy: Policy | None) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The users, teams and tokens a policy's rules name as written."""
    rules = policy.rules if policy is not None else ()
    return (
        frozenset(u for r in rules for u in r.users),
        frozenset(t for r in rules for t in r.teams),
        frozenset(t for r in rules for t in r.tokens),
    )


class PolicySubjects:
    """`external`: an OIDC identity provider names users and teams Bastion keeps no record of."""

    def __init__(self, identity: IdentityRepo, repo: ConfigRepo, *, external: bool) -> None:
        self._identity = identity
        self._repo = repo
        self._external = external

    async def resolve(
        self,
        policy: Policy | None,
        also_teams: Iterable[str] = (),
        *,
        actor: Actor | None = None,
        kept: Policy | None = None,
    ) -> Policy | None:
        """Emails to ids; BadRequest (400) naming every user, team or token that does not exist
        (`also_teams`: teams about to be created with it, by a configuration import). For an `actor`
        who may not see everyone, what they may not see does not exist, unless `kept` (the policy
        as stored now) already names it as written: a change sends back what it was shown."""
        if policy is None or not any(r.users or r.teams or r.tokens for r in policy.rules):
            return policy
        now = datetime.now(UTC)
        users = await self._identity.list_users()
        teams = frozenset(t.name for t in await self._identity.list_teams()) | frozenset(also_teams)
        tokens = [t for t in await self._repo.list_api_tokens() if t.revoked_at is None and not t.expired(now)]
        if actor is None or sees_everyone(actor):
            directory = Directory(
                users={u.email: u.id for u in users},
                teams=teams,
                tokens=frozenset(t.id for t in tokens),
                external=self._external,
            )
        else:
            kept_users, kept_teams, kept_tokens = _named(kept)
            directory = Directory(
                users={u.email: u.id for u in users if can_see_user(actor, u)},
                teams=teams & (actor.teams | kept_teams),
                tokens=frozenset(
                    t.id for t in tokens if (t.user is not None and t.user == actor.user) or t.id in kept_tokens
                ),
                external=self._external,
                ids=frozenset(u.id for u in users if u.id in kept_users),
            )
        try:
            return resolve_subjects(policy, directory)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    async def emails(self, actor: Actor | None = None) -> dict[str, str]:
        """Each user id's email that `actor` may see (every one without an actor), for showing policies."""
        users = await self._identity.list_users()
        return {u.id: u.email for u in users if actor is None or can_see_user(actor, u)}

    @staticmethod
    def shown(policy: Policy, emails: dict[str, str]) -> Policy:
        return shown_subjects(policy, emails)
