"""A virtual server's tool transform, end to end in both eras: renamed tool and argument, a fixed hidden argument."""

from __future__ import annotations

import pytest
from mcp import MCPError

from tests.harness import Running, stdio_fixture

pytestmark = pytest.mark.anyio
TRANSFORMS = {
    "fx__add": {
        "name": "plus_ten",
        "title": "Plus ten",
        "description": "Add ten to a number.",
        "annotations": {"readOnlyHint": True},
        "arguments": {"a": {"rename": "number"}, "b": {"hidden": True, "fixed": 10}},
    },
    "fx__echo": {"arguments": {"text": {"default": "hello"}}},
}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_renamed_tool_with_a_fixed_argument_is_called_in_both_eras(gateway: Running, mode: str) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__add", "fx__echo"], "transforms": TRANSFORMS})
    async with gateway.client("vs", mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"plus_ten", "fx__echo"}
        plus = tools["plus_ten"]
        assert plus.description == "Add ten to a number." and plus.annotations is not None and plus.annotations.read_only_hint
        assert set(plus.input_schema["properties"]) == {"number"} and plus.input_schema["required"] == ["number"]
        assert (await client.call_tool("plus_ten", {"number": 5})).structured_content == {"result": 15}
        assert (await client.call_tool("fx__echo", {})).content[0].text == "hello"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("plus_ten", {"number": 5, "b": 1000})
        assert "'b' is not accepted" in refused.value.error.message


async def test_a_transform_naming_a_missing_argument_is_refused_and_changes_nothing(gateway: Running) -> None:
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "tools": ["fx__add"], "transforms": {"fx__add": TRANSFORMS["fx__add"]}})
    bad = {"fx__add": {"arguments": {"c": {"rename": "z"}}}}
    response = await gateway.api.patch("/api/v1/servers/vs", json={"transforms": bad})
    assert response.status_code == 400
    assert "argument 'c', which the tool does not have (it has: a, b)" in response.json()["detail"]
    server = (await gateway.api.get("/api/v1/servers/vs")).json()
    assert server["transforms"] == {"fx__add": TRANSFORMS["fx__add"]} and server["exposed"]["tools"] == ["plus_ten"]
    typo = await gateway.api.patch("/api/v1/servers/vs", json={"transforms": {"fx__add": {"argumnts": {}}}})
    assert typo.status_code == 400 and "argumnts" in typo.json()["detail"]
