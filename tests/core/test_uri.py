"""The URI template matcher used to route resources/read to the template that owns a URI."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.uri import UriMatcher, normalize_uri, uri_readings


@pytest.mark.parametrize(
    ("template", "uri", "matches"),
    [
        ("fixture://items/{item_id}", "fixture://items/42", True),
        ("fixture://items/{item_id}", "fixture://items/a-b_c.d", True),
        ("fixture://items/{item_id}", "fixture://items/", False),
        ("fixture://items/{item_id}", "fixture://items/4/2", False),
        ("fixture://items/{item_id}", "fixture://items/42/", False),
        ("fixture://items/{item_id}", "xfixture://items/42", False),
        ("fixture://items/{item_id}", "fixture://other/42", False),
        ("users/{id}/posts/{post}", "users/1/posts/2", True),
        ("users/{id}/posts/{post}", "users/1/posts", False),
        ("file:///{+path}", "file:///a/b/c.txt", True),
        ("file:///{+path}", "file:///", False),
        ("docs{#section}", "docs/intro/part", True),
        ("db://t.v/{x}", "db://tXv/1", False),  # a literal "." is not a regex wildcard
        ("db://t.v/{x}", "db://t.v/1", True),
        ("calc://(a+b)/{x}", "calc://(a+b)/1", True),
        ("plain://static", "plain://static", True),
        ("plain://static", "plain://static2", False),
    ],
)
def test_template_match(template: str, uri: str, matches: bool) -> None:
    assert (UriMatcher([template]).match(uri) == template) is matches


def test_first_template_in_order_wins() -> None:
    matcher = UriMatcher(["repo://{owner}/{name}", "repo://{+path}"])
    assert matcher.match("repo://me/proj") == "repo://{owner}/{name}"
    assert matcher.match("repo://me/proj/sub") == "repo://{+path}"
    reverse = UriMatcher(["repo://{+path}", "repo://{owner}/{name}"])
    assert reverse.match("repo://me/proj") == "repo://{+path}"


def test_no_match_is_none() -> None:
    assert UriMatcher(["a://{x}"]).match("b://1") is None
    assert UriMatcher([]).match("a://1") is None


def test_plain_variable_stops_at_query_and_fragment() -> None:
    matcher = UriMatcher(["a://{x}"])
    assert matcher.match("a://1?q=2") is None
    assert matcher.match("a://1#frag") is None


@pytest.mark.parametrize(
    ("uri", "normal"),
    [
        ("fixture://items/%73ecret1", "fixture://items/secret1"),
        ("FIXTURE://Items.Example/A", "fixture://items.example/A"),  # the path keeps its case
        ("fixture://items/a%2fb", "fixture://items/a%2Fb"),  # reserved: escape kept, hex upper-cased
        ("fixture://items/x/../y/./z", "fixture://items/y/z"),
        ("file:///a/b/..", "file:///a/"),
        ("fixture://u@HOST:80/%7Ex?q=%7e#F", "fixture://u@host:80/~x?q=~#F"),
        ("fixture://items/%%37%33ecret", "fixture://items/%2573ecret"),  # a stray % can't build an escape
        ("file:///{+path}", "file:///{+path}"),
        ("no scheme/%41", "no scheme/A"),
    ],
)
def test_normal_form(uri: str, normal: str) -> None:
    assert normalize_uri(uri) == normal


@given(st.text(alphabet="%2aAfF7Ee3:/.?#{}sx-", max_size=40))
def test_normal_form_is_idempotent(uri: str) -> None:
    once = normalize_uri(uri)
    assert normalize_uri(once) == once
    assert all(normalize_uri(reading) == reading for reading in uri_readings(uri))


def test_the_decoded_reading_is_checked_too() -> None:
    assert uri_readings("fixture://items/x%252Fsecret") == ("fixture://items/x%252Fsecret", "fixture://items/x/secret")
    assert uri_readings("fixture://items/plain") == ("fixture://items/plain",)
