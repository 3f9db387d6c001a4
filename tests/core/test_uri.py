"""The URI template matcher used to route resources/read to the template that owns a URI."""

from __future__ import annotations

import pytest

from bastion.core.uri import UriMatcher


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
