"""Per-tool policy decisions: ordered rules, first match wins, deny when nothing matches."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bastion.core.compose import compose
from bastion.core.models import CatalogItem, Upstream, UpstreamSpec, VirtualServerSpec
from bastion.core.policy import Caller, Policy, PolicyRule

ALICE = Caller(user="alice", teams=frozenset({"data"}), role="developer", token="t1")
BOB = Caller(user="bob", teams=frozenset({"web"}), role="viewer")


def test_without_a_matching_rule_the_default_decides_and_it_is_deny() -> None:
    policy = Policy(rules=(PolicyRule(effect="allow", users=("alice",), tools=("*",)),))
    assert policy.allows(ALICE, "tool", "db__query")
    assert not policy.allows(BOB, "tool", "db__query")
    assert Policy(default="allow").allows(BOB, "tool", "anything")


def test_the_first_rule_matching_caller_and_item_wins() -> None:
    policy = Policy(
        rules=(
            PolicyRule(effect="deny", teams=("data",), tools=("db__drop*",)),
            PolicyRule(effect="allow", tools=("db__*",)),
        )
    )
    assert not policy.allows(ALICE, "tool", "db__drop_table")
    assert policy.allows(BOB, "tool", "db__drop_table")
    assert policy.allows(ALICE, "tool", "db__query")
    assert not policy.allows(ALICE, "tool", "files__read")


def test_every_subject_list_a_rule_names_must_match() -> None:
    rule = PolicyRule(effect="allow", roles=("developer",), teams=("data",), tools=("*",))
    assert rule.matches(ALICE)
    assert not rule.matches(Caller(user="carol", teams=frozenset({"data"}), role="viewer"))
    assert not rule.matches(Caller(role="developer"))
    assert PolicyRule(effect="allow", tokens=("t1",), tools=("*",)).matches(ALICE)
    assert not PolicyRule(effect="allow", tokens=("t1",), tools=("*",)).matches(BOB)


def test_a_rule_covers_only_the_kinds_it_names() -> None:
    policy = Policy(rules=(PolicyRule(effect="allow", prompts=("greet",), resources=("file:///pub/*",)),))
    assert policy.allows(BOB, "prompt", "greet")
    assert not policy.allows(BOB, "tool", "greet")
    assert policy.allows(BOB, "resource", "file:///pub/a.txt")
    assert policy.allows(BOB, "resource_template", "file:///pub/{name}")
    assert not policy.allows(BOB, "resource", "file:///private/a.txt")


def test_a_rule_that_covers_nothing_is_refused() -> None:
    with pytest.raises(ValidationError):
        PolicyRule(effect="allow", users=("alice",))
    with pytest.raises(ValidationError):
        PolicyRule(effect="allow", tools=("",))
    with pytest.raises(ValidationError):
        PolicyRule.model_validate({"effect": "maybe", "tools": ["*"]})
    with pytest.raises(ValidationError):
        PolicyRule.model_validate({"effect": "allow", "roles": ["root"], "tools": ["*"]})


@given(st.lists(st.sampled_from(["allow", "deny"]), min_size=1, max_size=5), st.text(min_size=1, max_size=20))
def test_rules_for_a_caller_decide_exactly_as_the_whole_policy(effects: list[str], name: str) -> None:
    rules = tuple(
        PolicyRule.model_validate({"effect": e, "users": ["alice"] if i % 2 else [], "tools": ["*" if i % 3 else name]})
        for i, e in enumerate(effects)
    )
    policy = Policy(rules=rules)
    for caller in (ALICE, BOB):
        assert policy.for_caller(caller).allows(caller, "tool", name) == policy.allows(caller, "tool", name)


def _item(kind: str, key: str) -> CatalogItem:
    definition = {"name": key} if kind in ("tool", "prompt") else {"uri": key, "name": key}
    return CatalogItem.model_validate(
        {"upstream": "up", "kind": kind, "key": key, "gateway_name": f"up__{key}", "definition": definition}
    )


def test_a_restricted_view_lists_only_what_the_caller_may_use_in_the_same_order() -> None:
    upstream = Upstream(spec=UpstreamSpec(name="up", transport="stdio", command="x"))
    items = [_item("tool", n) for n in ("alpha", "beta", "gamma")] + [_item("prompt", "greet")]
    policy = Policy(rules=(PolicyRule(effect="deny", tools=("up__beta",)), PolicyRule(effect="allow", tools=("*",))))
    view, _ = compose(VirtualServerSpec(name="vs", upstreams=("up",), policy=policy), items, {"up": upstream}, strict=True)
    restriction = view.restricted(BOB)
    assert restriction is not None
    assert restriction.list_keys["tool"] == ("up__alpha", "up__gamma")
    assert [t["name"] for t in restriction.lists["tool"]] == ["up__alpha", "up__gamma"]
    assert restriction.list_keys["prompt"] == ()
    assert view.restricted(BOB) is restriction  # built once per caller and view
    unrestricted, _ = compose(VirtualServerSpec(name="vs", upstreams=("up",)), items, {"up": upstream}, strict=True)
    assert unrestricted.restricted(BOB) is None
