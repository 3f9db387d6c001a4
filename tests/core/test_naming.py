"""Naming rules: slugs, gateway names that meet the MCP tool-name rules, and no collisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.errors import BadRequest
from bastion.core.naming import (
    MAX_NAME,
    SEPARATOR,
    check_slug,
    gateway_name,
    gateway_names,
    is_valid_tool_name,
)

slugs = st.from_regex(r"\A[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,40}\Z").filter(lambda s: not s.endswith("-"))
originals = st.text(min_size=0, max_size=220)


@pytest.mark.parametrize("value", ["a", "fx", "my-server", "a1", "1a", "x" * 63, "a-b-c"])
def test_slug_accepted(value: str) -> None:
    assert check_slug(value, "upstream") == value


@pytest.mark.parametrize(
    "value",
    ["", "A", "Fx", "-a", "a-", "a_b", "a--b", "x" * 64, "a b", "café", "a.b", "a/b", " a", "a\n"],
)
def test_slug_refused(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        check_slug(value, "upstream")
    assert "upstream" in err.value.detail


def test_slug_refused_when_not_a_string() -> None:
    with pytest.raises(BadRequest):
        check_slug(42, "upstream")  # type: ignore[arg-type]


def test_plain_name_is_upstream_separator_name() -> None:
    assert gateway_name("fx", "echo") == "fx__echo"
    assert gateway_name("fx", "get.thing-1") == "fx__get.thing-1"


@pytest.mark.parametrize(
    "original",
    ["has space", "ünïcödé", "名前", "emoji 🙂", "", "a/b:c", "x" * 200, "tab\there", "semi;colon", "é" * 130],
)
def test_awkward_original_gives_valid_name(original: str) -> None:
    name = gateway_name("x" * 63, original)
    assert is_valid_tool_name(name), name
    assert len(name) <= MAX_NAME
    assert name.startswith("x" * 63 + SEPARATOR)


def test_cleaned_names_that_look_alike_stay_distinct() -> None:
    # "a b", "a/b" and "a:b" all clean to "a_b"; each keeps a hash of its own original.
    names = {gateway_name("fx", n) for n in ("a b", "a/b", "a:b", "a_b")}
    assert len(names) == 4


def test_long_names_sharing_a_prefix_stay_distinct() -> None:
    base = "t" * 190
    assert gateway_name("fx", base + "one") != gateway_name("fx", base + "two")


def test_repeated_name_with_different_keys_is_hashed_apart() -> None:
    names = gateway_names("fx", [("item", "fixture://a"), ("item", "fixture://b"), ("other", "fixture://c")])
    assert len(set(names)) == 3
    assert names[2] == "fx__other"
    assert all(is_valid_tool_name(n) for n in names)


def test_names_are_stable() -> None:
    pairs = [("x y", "k1"), ("x y", "k2"), ("plain", "k3")]
    assert gateway_names("fx", pairs) == gateway_names("fx", pairs)


def test_plain_name_equal_to_anothers_hashed_name_does_not_collide() -> None:
    hashed = gateway_name("fx", "a b")  # fx__a_b_<hash>
    lookalike = hashed.removeprefix("fx__")  # a name that is already valid and spells the same
    names = gateway_names("fx", [("a b", "a b"), (lookalike, lookalike)])
    assert len(set(names)) == 2


@given(upstream=slugs, original=originals)
def test_any_original_gives_a_valid_name(upstream: str, original: str) -> None:
    name = gateway_name(upstream, original)
    assert is_valid_tool_name(name)
    assert name.startswith(upstream + SEPARATOR)


@given(upstream=slugs, pairs=st.dictionaries(originals, originals, max_size=12))
def test_distinct_keys_never_collide(upstream: str, pairs: dict[str, str]) -> None:
    # keys unique (dict keys), names arbitrary and often repeated
    listed = [(name, key) for key, name in pairs.items()]
    names = gateway_names(upstream, listed)
    assert len(set(names)) == len(names)
    assert all(is_valid_tool_name(n) for n in names)


@given(upstream=slugs, names=st.lists(st.text(alphabet="ab _/é", max_size=6), unique=True, max_size=15))
def test_distinct_originals_never_collide(upstream: str, names: list[str]) -> None:
    out = gateway_names(upstream, [(n, n) for n in names])
    assert len(set(out)) == len(out)


def test_two_upstreams_never_share_a_name() -> None:
    # Slugs cannot contain "_", so "{upstream}__" is an unambiguous prefix.
    assert gateway_name("a", "b__c") != gateway_name("a-b", "c")
    assert gateway_name("a", "x").split(SEPARATOR, 1)[0] == "a"
