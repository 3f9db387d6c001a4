"""Per-tool policy on a virtual server: ordered allow/deny rules by user, team, role or token over
tool, prompt and resource names (globs). Pure decisions; the pipeline applies them to lists and calls.

The first rule that matches both the caller and the item decides; when none does, the policy's
default does, and that default is "deny": once a server has a policy, it is an allow-list unless
it says otherwise. A server without a policy exposes everything it composes to every caller whose
token reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bastion.core.uri import normalize_uri
from bastion.core.values import Frozen, ItemKind, Role

Effect = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class Caller:
    """What a rule can match a request's principal on."""

    user: str | None = None
    teams: frozenset[str] = frozenset()
    role: Role | None = None
    token: str | None = None


class PolicyRule(Frozen):
    """One rule. Empty subject lists mean every caller; item globs name what the rule covers
    (tools, prompts by exposed name; resources and templates by URI, in normal form)."""

    effect: Effect
    users: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    roles: tuple[Role, ...] = ()
    tokens: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()

    @field_validator("resources")
    @classmethod
    def _normal_uris(cls, globs: tuple[str, ...]) -> tuple[str, ...]:
        """Resource URIs are matched in normal form (core/uri.py), so globs are kept in it too."""
        return tuple(normalize_uri(glob) for glob in globs)

    @model_validator(mode="after")
    def _covers_something(self) -> PolicyRule:
        if not (self.tools or self.prompts or self.resources):
            raise ValueError("a policy rule must name tools, prompts or resources (globs such as '*')")
        if any(not glob or len(glob) > 512 for glob in (*self.tools, *self.prompts, *self.resources)):
            raise ValueError("policy globs must be 1 to 512 characters")
        return self

    def matches(self, caller: Caller) -> bool:
        if self.users and caller.user not in self.users:
            return False
        if self.teams and not caller.teams.intersection(self.teams):
            return False
        if self.roles and caller.role not in self.roles:
            return False
        return not self.tokens or caller.token in self.tokens

    def covers(self, kind: ItemKind, name: str) -> bool:
        globs = self.tools if kind == "tool" else self.prompts if kind == "prompt" else self.resources
        return any(fnmatchcase(name, glob) for glob in globs)


class Policy(Frozen):
    default: Effect = "deny"
    rules: tuple[PolicyRule, ...] = Field(default=(), max_length=1000)

    def allows(self, caller: Caller, kind: ItemKind, name: str) -> bool:
        for rule in self.rules:
            if rule.covers(kind, name) and rule.matches(caller):
                return rule.effect == "allow"
        return self.default == "allow"

    def for_caller(self, caller: Caller) -> Policy:
        """The rules that can apply to `caller`, so a list is filtered without re-matching subjects."""
        return Policy(default=self.default, rules=tuple(r for r in self.rules if r.matches(caller)))


@dataclass(frozen=True, slots=True)
class Directory:
    """Who exists, for checking a policy's subjects when it is saved: user ids by (normalised) email,
    team names, live API token ids. `external` when an identity provider vouches for users and
    teams Bastion has no record of (their names are then kept as written)."""

    users: dict[str, str]
    teams: frozenset[str]
    tokens: frozenset[str]
    external: bool = False
    ids: frozenset[str] = frozenset()
    """User ids that may be named by id only: a rule kept as it was names them, but their emails
    are not the saver's to see (so an email never resolves to them)."""


def resolve_subjects(policy: Policy, directory: Directory) -> Policy:
    """The policy with users named by email stored as their ids; raises ValueError naming every
    user, team or token that does not exist (a rule naming one would silently never match)."""
    ids = frozenset(directory.users.values()) | directory.ids
    unknown: list[str] = []
    rules = []
    for rule in policy.rules:
        users: list[str] = []
        for user in rule.users:
            email = user.strip().lower()
            if user in ids:
                users.append(user)
            elif email in directory.users:
                users.append(directory.users[email])
                if directory.external:
                    users.append(email)  # the identity provider's tokens name this user by the claim
            elif directory.external:
                users.append(user)
            else:
                unknown.append(f"user {user!r}")
        unknown += [f"team {t!r}" for t in rule.teams if t not in directory.teams and not directory.external]
        unknown += [f"token {t!r}" for t in rule.tokens if t not in directory.tokens]
        rules.append(rule.model_copy(update={"users": tuple(dict.fromkeys(users))}))
    if unknown:
        raise ValueError("the policy names what does not exist: " + ", ".join(dict.fromkeys(unknown)))
    return policy.model_copy(update={"rules": tuple(rules)})


def shown_subjects(policy: Policy, emails: dict[str, str]) -> Policy:
    """The policy as people read it: user ids shown as emails (an id with no user left stays)."""
    rules = [r.model_copy(update={"users": tuple(dict.fromkeys(emails.get(u, u) for u in r.users))}) for r in policy.rules]
    return policy.model_copy(update={"rules": tuple(rules)})
