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
