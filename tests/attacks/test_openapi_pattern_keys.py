"""A document's patterns against a caller's keys: Python's `re` backtracks, so a third-party document's
`^(a+)+$` and a key the caller picks held the event loop for minutes, in the OpenAPI upstream (which
matches a map's keys to drop its read-only ones) and in the REST facade (which checks arguments with
jsonschema). Such a call is answered at once: patterns are matched by RE2 (linear time), and a key past
256 characters is never matched. Through a real gateway to an API on loopback. `fail_after` is a guard."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.e2e.test_openapi_real_documents import api  # noqa: F401 (the recording API, a fixture)
from tests.harness import Running
from tests.rest.test_upstreams_api import assert_problem

pytestmark = pytest.mark.anyio

CATASTROPHIC = "^(a+)+$"
LONG_KEY = "a" * 5000 + "!"
SHORT_KEY = "a" * 29 + "!"  # some forty seconds of backtracking, well under 256 characters
STAMP = {"type": "object", "properties": {"id": {"type": "string", "readOnly": True}, "at": {"type": "string"}}}
"""What the catastrophic pattern covers holds a read-only property: a request's keys are matched to drop it."""


def _document() -> dict[str, Any]:
    def body(patterns: dict[str, Any]) -> dict[str, Any]:
        schema = {"type": "object", "properties": {"name": {"type": "string"}}, "patternProperties": patterns}
        return {"content": {"application/json": {"schema": schema}}}

    ok = {"200": {"description": "ok"}}
    return {
        "openapi": "3.1.0", "info": {"title": "patterns", "version": "1"},
        "paths": {
            "/stamped": {"post": {"operationId": "stamped", "responses": ok, "requestBody": body(
                {CATASTROPHIC: STAMP, "^x-": {"type": "string", "readOnly": True}}
            )}},
            "/tagged": {"post": {"operationId": "tagged", "responses": ok, "requestBody": body({CATASTROPHIC: {"type": "string"}})}},
            "/labelled": {"post": {"operationId": "labelled", "responses": ok, "requestBody": body({"^x-": {"type": "string"}})}},
        },
    }


async def _setup(gateway: Running, base: str) -> None:
    await gateway.register({"name": "pat", "transport": "openapi", "spec": _document(), "base_url": base})
    await gateway.create_server({"name": "vs-pat", "upstreams": ["pat"]})


async def _call(gateway: Running, tool: str, arguments: dict[str, Any]) -> str:
    async with gateway.client("vs-pat") as client:
        with anyio.fail_after(20):
            result = await client.call_tool(f"pat__{tool}", arguments)
    assert result.is_error is True, result.content
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_a_key_too_long_to_match_against_a_documents_pattern_is_refused_at_once(gateway: Running, api: Any) -> None:
    base, seen = api
    await _setup(gateway, base)
    message = await _call(gateway, "stamped", {"body": {LONG_KEY: {"at": "x"}}})
    assert "5001 characters" in message and "256" in message, message
    assert seen == []


async def test_a_pattern_that_backtracks_exponentially_is_matched_at_once(gateway: Running, api: Any) -> None:
    base, seen = api
    await _setup(gateway, base)
    async with gateway.client("vs-pat") as client:
        with anyio.fail_after(20):
            result = await client.call_tool("pat__stamped", {"body": {"name": "n", SHORT_KEY: {"at": "x"}, "aaa": {"id": "i", "at": "y"}}})
    assert result.is_error is not True, result.content
    # SHORT_KEY matches no pattern and goes as it is; "aaa" matches the catastrophic one: its read-only id stays behind.
    assert json.loads(seen[-1]["body"]) == {"name": "n", SHORT_KEY: {"at": "x"}, "aaa": {"at": "y"}}


async def test_the_rest_facade_checks_a_schema_with_such_a_pattern_at_once(gateway: Running, api: Any) -> None:
    base, seen = api
    await _setup(gateway, base)
    with anyio.fail_after(20):
        answer = await gateway.api.post("/api/v1/servers/vs-pat/tools/pat__tagged", json={"body": {SHORT_KEY: "x"}})
    assert answer.status_code == 200, answer.text
    assert json.loads(seen[-1]["body"]) == {SHORT_KEY: "x"}


async def test_the_rest_facade_refuses_a_key_too_long_to_match_against_patterns(gateway: Running, api: Any) -> None:
    base, seen = api
    await _setup(gateway, base)
    with anyio.fail_after(20):
        answer = await gateway.api.post("/api/v1/servers/vs-pat/tools/pat__labelled", json={"body": {"x-" + "a" * 5000: "x"}})
    problem = assert_problem(answer, 422)
    assert problem["errors"][0]["message"] == "a key longer than 256 characters is not accepted here", problem
    assert problem["errors"][0]["pointer"].startswith("/body/x-aaa"), problem
    assert seen == []
