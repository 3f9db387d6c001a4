"""The configuration document and plan (pure): unknown keys named with their path, secrets as
references, unresolved references kept or refused, and plans ordered by dependency."""

from __future__ import annotations

import pytest

from bastion.core.config_doc import (
    Action,
    TeamDoc,
    UpstreamDoc,
    export_upstream,
    keep_stored_secrets,
    parse_doc,
    plan,
    read_document,
    resolve_references,
)
from bastion.core.errors import BadRequest
from bastion.core.models import QueryApiKey, UpstreamSpec


def test_unknown_keys_and_bad_values_are_named_by_their_path_without_echoing_values() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_doc({"upstreams": [{"name": "a", "transport": "stdio", "command": "x", "colour": "hunter2"}]})
    assert "upstreams.0.colour" in caught.value.detail and "hunter2" not in caught.value.detail
    with pytest.raises(BadRequest, match="more than once"):
        parse_doc({"teams": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(BadRequest, match="not valid YAML at line"):
        read_document("teams:\n  - {name: a\n  - b: [\n")
    with pytest.raises(BadRequest, match="mapping"):
        read_document("- a list\n")


def test_secrets_leave_as_references_and_come_back_from_the_environment() -> None:
    spec = UpstreamSpec(
        name="gh", transport="openapi", url="https://x.example/openapi.json", headers={"Authorization": "Bearer t"},
        auth=QueryApiKey(name="key", value="k"),
    )
    doc = export_upstream(spec)
    assert doc.headers == {"Authorization": "${BASTION_SECRET_GH_HEADER_AUTHORIZATION}"}
    assert doc.auth is not None and doc.auth.value == "${BASTION_SECRET_GH_AUTH_VALUE}"  # type: ignore[union-attr]
    parsed = parse_doc({"upstreams": [doc.model_dump(mode="json")]})
    resolved = resolve_references(parsed, {"BASTION_SECRET_GH_HEADER_AUTHORIZATION": "Bearer new"})
    up = resolved.upstreams[0]
    assert up.headers == {"Authorization": "Bearer new"}
    kept = keep_stored_secrets(up, spec)  # the unresolved auth value keeps the stored one
    assert kept.auth is not None and kept.auth.value == "k"  # type: ignore[union-attr]
    with pytest.raises(BadRequest, match=r"\$\{BASTION_SECRET_GH_AUTH_VALUE\}") as caught:
        keep_stored_secrets(up, None)
    assert "Bearer new" not in caught.value.detail


def test_a_plan_creates_in_dependency_order_and_deletes_only_when_pruning() -> None:
    up = UpstreamDoc(name="u", transport="stdio", command="x")
    current = {"team": {"old": TeamDoc(name="old")}, "upstream": {"u": up}}
    desired = {"team": {"new": TeamDoc(name="new")}, "upstream": {"u": up.model_copy(update={"pin": "warn"})}}
    assert plan(current, desired, prune=False) == [  # type: ignore[arg-type]
        Action(verb="create", kind="team", name="new"),
        Action(verb="update", kind="upstream", name="u", changes=("pin",)),
    ]
    assert [a.line() for a in plan(current, desired, prune=True)][-1] == "- team old"  # type: ignore[arg-type]
    assert plan(current, current, prune=True) == []  # type: ignore[arg-type]
