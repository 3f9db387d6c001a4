"""Which upstream session carries a call (core.upstream_sessions)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.core.models import UpstreamSpec
from bastion.core.upstream_sessions import SHARED, SessionChoice, caller_key, choose_session, shared_mode

HTTP = UpstreamSpec(name="u", transport="streamable-http", url="http://127.0.0.1:1/mcp")
STDIO = UpstreamSpec(name="u", transport="stdio", command="x")


def choose(spec: UpstreamSpec, **kw: Any) -> SessionChoice:
    values = {"caller_legacy": True, "caller_askable": True, "shared_is_legacy": False, "legacy_refused": False}
    return choose_session(spec, **{**values, **kw})


def test_a_legacy_caller_that_can_be_asked_gets_its_own_legacy_session_on_a_dual_era_upstream() -> None:
    assert choose(HTTP) == SessionChoice(own=True, mode="legacy")


@pytest.mark.parametrize(
    "kw",
    [
        {"caller_legacy": False},  # a 2026-07-28 caller: stateless, shared
        {"caller_askable": False},  # nothing to ask it: its context travels per request
        {"legacy_refused": True},  # the upstream speaks 2026-07-28 only: bridged
    ],
)
def test_calls_without_caller_state_share_the_modern_session(kw: dict[str, Any]) -> None:
    assert choose(HTTP, **kw) == SHARED


def test_a_legacy_only_upstream_gives_every_caller_its_own_session() -> None:
    assert choose(HTTP, caller_legacy=False, caller_askable=False, shared_is_legacy=True).own


def test_the_operator_decides_for_stateless_and_pinned_upstreams() -> None:
    assert choose(HTTP.model_copy(update={"isolation": "stateless"}), shared_is_legacy=True) == SHARED
    assert choose(HTTP.model_copy(update={"protocol": "2026-07-28"})) == SHARED
    assert shared_mode(HTTP.model_copy(update={"protocol": "2025-11-25"})) == "legacy"
    assert shared_mode(HTTP) == "auto"


def test_stdio_is_one_process_unless_per_session() -> None:
    assert choose(STDIO) == SHARED
    assert choose(STDIO.model_copy(update={"isolation": "per_user"})) == SHARED
    assert choose(STDIO.model_copy(update={"isolation": "per_session"})).own


def test_a_caller_key_always_names_the_user() -> None:
    assert caller_key("alice", "s1", None) != caller_key("bob", "s1", None)
    assert caller_key("alice", None, {"roots": {}}) != caller_key("alice", None, {"sampling": {}})
    assert caller_key("alice", None, {"a": 1, "b": 2}) == caller_key("alice", None, {"b": 2, "a": 1})


def test_two_sessionless_clients_of_one_user_are_two_callers() -> None:
    # A 2026-07-28 client has no session: its credential (an OAuth grant, an API token) tells it apart.
    roots = {"roots": {}}
    assert caller_key("alice", None, roots, "grant:desktop") != caller_key("alice", None, roots, "grant:ide")
    assert caller_key("alice", None, roots, "grant:desktop") == caller_key("alice", None, roots, "grant:desktop")
    assert caller_key("alice", "s1", roots, "grant:desktop") == caller_key("alice", "s1", roots, "grant:ide")
