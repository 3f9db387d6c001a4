"""Path keys as real documents write them (core/openapi_paths.py): templates no parameter declares,
and a query written into the key."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.core.openapi_paths import UnusablePath, path_shape


def _p(name: str, where: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "schema": {"type": "integer"}, **extra}


def test_a_key_as_it_should_be_is_left_as_it_is() -> None:
    params = [_p("id", "path", required=True), _p("q", "query")]
    shape = path_shape("/things/{id}", params)
    assert (shape.path, shape.query, list(shape.parameters)) == ("/things/{id}", (), params)


def test_an_undeclared_template_is_a_required_string_path_parameter() -> None:
    shape = path_shape("/apps/{app_id}/logs/{id}", [_p("id", "path", required=True), _p("app_id", "query")])
    assert shape.parameters[-1] == {"name": "app_id", "in": "path", "required": True, "schema": {"type": "string"}}
    assert [(p["name"], p["in"]) for p in shape.parameters] == [("id", "path"), ("app_id", "query"), ("app_id", "path")]


def test_literal_pairs_are_fixed_and_take_the_place_of_a_query_parameter_of_their_name() -> None:
    shape = path_shape("/request/{id}?cmd=diff&view=a%20b&flag", [_p("id", "path"), _p("cmd", "query"), _p("limit", "query")])
    assert shape.path == "/request/{id}"
    assert shape.query == (("cmd", "diff"), ("view", "a b"), ("flag", ""))
    assert [p["name"] for p in shape.parameters] == ["id", "limit"]


def test_a_templated_value_moves_its_parameter_to_the_query_under_the_pairs_name() -> None:
    declared_in_path = _p("query", "path", required=True, style="simple", description="what to find")
    shape = path_shape("/search/{country}/?q={query}&at={at}&lat={lat}", [_p("country", "path"), declared_in_path, _p("lat", "query")])
    assert shape.path == "/search/{country}/" and shape.query == ()
    by_name = {p["name"]: p for p in shape.parameters}
    assert by_name["q"] == {"name": "q", "in": "query", "schema": {"type": "integer"}, "required": True, "description": "what to find"}
    assert by_name["at"] == {"name": "at", "in": "query", "schema": {"type": "string"}}  # undeclared: optional
    assert by_name["lat"] == _p("lat", "query")
    assert set(by_name) == {"country", "q", "at", "lat"}


@pytest.mark.parametrize(("key", "why"), [
    ("/numbers/{country}?{search}=1", "names a parameter by a template"),
    ("/x?q=a{b}", "a template inside a value"),
    ("/x/{id}?id={id}", "both in its path and in the query"),
    ("/x/{}", "an empty template"),
])
def test_what_cannot_be_sent_as_meant_is_refused_saying_why(key: str, why: str) -> None:
    with pytest.raises(UnusablePath, match=why):
        path_shape(key, [])


def test_a_pair_that_would_set_a_declared_query_parameter_a_second_time_is_refused() -> None:
    with pytest.raises(UnusablePath, match="also declares"):
        path_shape("/x?q={term}", [_p("q", "query"), _p("term", "path")])
