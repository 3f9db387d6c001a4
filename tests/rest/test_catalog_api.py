"""REST /api/v1/tools, /prompts, /resources: search, filter, rename, redescribe, enable."""

from __future__ import annotations

import httpx2
import pytest

from tests.harness import Running, stdio_fixture

pytestmark = pytest.mark.anyio


def names(response: httpx2.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["name"] for i in response.json()["items"]]


def assert_problem(response: httpx2.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()["detail"]


async def test_search_matches_name_and_description(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    assert names(await api.get("/api/v1/tools", params={"q": "echo"})) == ["fx__echo"]
    # "unchanged" appears only in echo's description ("Return the text unchanged.")
    assert names(await api.get("/api/v1/tools", params={"q": "UNCHANGED"})) == ["fx__echo"]
    assert names(await api.get("/api/v1/tools", params={"q": "integers"})) == ["fx__add"]
    assert names(await api.get("/api/v1/tools", params={"q": "no-such-thing-anywhere"})) == []
    everything = names(await api.get("/api/v1/tools"))
    assert names(await api.get("/api/v1/tools", params={"q": ""})) == everything
    assert {"fx__echo", "fx__add", "fx__fail"} <= set(everything)


async def test_upstream_filter(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("a"))
    await any_db_gateway.register(stdio_fixture("b"))
    only_a = (await api.get("/api/v1/tools", params={"upstream": "a"})).json()["items"]
    assert only_a and all(t["upstream"] == "a" for t in only_a)
    assert len(names(await api.get("/api/v1/tools"))) == 2 * len(only_a)
    assert names(await api.get("/api/v1/tools", params={"upstream": "b", "q": "echo"})) == ["b__echo"]
    assert names(await api.get("/api/v1/tools", params={"upstream": "zz"})) == []
    assert names(await api.get("/api/v1/prompts", params={"upstream": "b"})) == ["b__greet"]


async def test_get_one_item(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    tool = (await api.get("/api/v1/tools/fx__add")).json()
    assert tool["kind"] == "tool"
    assert tool["gateway_name"] == "fx__add"
    assert tool["original_name"] == "add"
    assert tool["upstream"] == "fx"
    assert tool["enabled"] is True
    assert set(tool["input_schema"]["properties"]) == {"a", "b"}
    assert_problem(await api.get("/api/v1/tools/fx__nope"), 404)
    assert_problem(await api.get("/api/v1/tools/fx__greet"), 404)  # a prompt, not a tool


async def test_rename_changes_the_name_clients_see(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    response = await api.patch("/api/v1/tools/fx__echo", json={"name": "shout"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "shout"
    assert response.json()["gateway_name"] == "fx__echo"
    exposed = (await api.get("/api/v1/servers/vs")).json()["exposed"]["tools"]
    assert "shout" in exposed and "fx__echo" not in exposed
    assert "shout" in names(await api.get("/api/v1/tools", params={"q": "shout"}))
    async with any_db_gateway.client("vs") as client:
        listed = [t.name for t in (await client.list_tools()).tools]
        assert "shout" in listed and "fx__echo" not in listed
        result = await client.call_tool("shout", {"text": "hey"})
        assert result.content[0].text == "hey"
    # null restores the upstream's name
    response = await api.patch("/api/v1/tools/fx__echo", json={"name": None})
    assert response.json()["name"] == "fx__echo"
    assert "fx__echo" in (await api.get("/api/v1/servers/vs")).json()["exposed"]["tools"]


async def test_rename_to_existing_name_conflicts(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    assert "fx__add" in assert_problem(await api.patch("/api/v1/tools/fx__echo", json={"name": "fx__add"}), 409)
    assert (await api.patch("/api/v1/tools/fx__add", json={"name": "plus"})).status_code == 200
    assert_problem(await api.patch("/api/v1/tools/fx__echo", json={"name": "plus"}), 409)
    assert (await api.get("/api/v1/tools/fx__echo")).json()["name"] == "fx__echo"


async def test_rename_colliding_inside_a_server_conflicts(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["fx"], "prefix": "never"})
    # "add" is fx__add's exposed name in vs; renaming echo to it would shadow it there.
    assert_problem(await api.patch("/api/v1/tools/fx__echo", json={"name": "add"}), 409)
    assert (await api.get("/api/v1/tools/fx__echo")).json()["name_override"] is None


async def test_rename_to_invalid_name_refused(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    for bad in ("has space", "x" * 129, "ünï", "a/b", "semi;colon"):
        assert_problem(await api.patch("/api/v1/tools/fx__echo", json={"name": bad}), 400)
    assert (await api.get("/api/v1/tools/fx__echo")).json()["name"] == "fx__echo"
    # An empty name means "no override", like null.
    response = await api.patch("/api/v1/tools/fx__echo", json={"name": ""})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "fx__echo"


async def test_patch_refuses_unknown_fields_and_bad_types(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    assert_problem(await api.patch("/api/v1/tools/fx__echo", json={"colour": "red"}), 400)
    assert_problem(await api.patch("/api/v1/tools/fx__echo", json={"enabled": "no"}), 400)
    assert_problem(await api.patch("/api/v1/tools/fx__echo", json={"name": 5}), 400)
    assert_problem(await api.patch("/api/v1/tools/fx__echo", json=["enabled"]), 400)
    assert_problem(await api.patch("/api/v1/tools/fx__echo", content=b"{nope", headers={"content-type": "application/json"}), 400)
    assert_problem(await api.patch("/api/v1/tools/fx__nope", json={"enabled": False}), 404)


async def test_description_override_shows_in_list(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.create_server({"name": "vs", "tools": ["fx__echo"]})
    response = await api.patch("/api/v1/tools/fx__echo", json={"description": "Says it back."})
    assert response.status_code == 200, response.text
    listed = {t["name"]: t for t in (await api.get("/api/v1/tools")).json()["items"]}
    assert listed["fx__echo"]["description"] == "Says it back."
    assert listed["fx__echo"]["description_override"] == "Says it back."
    assert names(await api.get("/api/v1/tools", params={"q": "says it back"})) == ["fx__echo"]
    async with any_db_gateway.client("vs") as client:
        (tool,) = (await client.list_tools()).tools
        assert tool.description == "Says it back."
    response = await api.patch("/api/v1/tools/fx__echo", json={"description": None})
    assert response.json()["description"] == "Return the text unchanged."


async def test_disable_tool_hides_it_from_servers(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    await any_db_gateway.create_server({"name": "vs", "tools": ["fx__echo", "fx__add"]})
    response = await api.patch("/api/v1/tools/fx__echo", json={"enabled": False})
    assert response.status_code == 200 and response.json()["enabled"] is False
    assert (await api.get("/api/v1/servers/vs")).json()["exposed"]["tools"] == ["fx__add"]
    await api.patch("/api/v1/tools/fx__echo", json={"enabled": True})
    assert (await api.get("/api/v1/servers/vs")).json()["exposed"]["tools"] == ["fx__add", "fx__echo"]


async def test_overrides_survive_a_refresh(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    await api.patch("/api/v1/tools/fx__echo", json={"name": "shout", "description": "Loud.", "enabled": False})
    assert (await api.post("/api/v1/upstreams/fx/refresh")).status_code == 200
    tool = (await api.get("/api/v1/tools/fx__echo")).json()
    assert (tool["name"], tool["description"], tool["enabled"]) == ("shout", "Loud.", False)


async def test_prompts_listed(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    (prompt,) = (await api.get("/api/v1/prompts")).json()["items"]
    assert prompt["kind"] == "prompt"
    assert prompt["name"] == "fx__greet"
    assert prompt["description"] == "Greet someone by name."
    assert [a["name"] for a in prompt["arguments"]] == ["name"]
    assert names(await api.get("/api/v1/prompts", params={"q": "greet"})) == ["fx__greet"]
    assert (await api.patch("/api/v1/prompts/fx__greet", json={"name": "hello"})).json()["name"] == "hello"


async def test_resources_listed(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register(stdio_fixture("fx"))
    items = {i["kind"]: i for i in (await api.get("/api/v1/resources")).json()["items"]}
    assert set(items) == {"resource", "resource_template"}
    assert items["resource"]["uri"] == "fixture://static"
    assert items["resource"]["mime_type"] == "text/plain"
    assert items["resource"]["name"] == "fx__static"
    assert items["resource_template"]["uri_template"] == "fixture://items/{item_id}"
    assert names(await api.get("/api/v1/resources", params={"q": "fixture://items"})) == ["fx__item"]
    one = (await api.get("/api/v1/resources/fx__item")).json()
    assert one["kind"] == "resource_template"
    # Resources are addressed by URI: they cannot be renamed, only redescribed or disabled.
    assert_problem(await api.patch("/api/v1/resources/fx__static", json={"name": "other"}), 400)
    response = await api.patch("/api/v1/resources/fx__static", json={"description": "Fixed."})
    assert response.status_code == 200 and response.json()["description"] == "Fixed."


async def test_existing_collision_does_not_block_unrelated_edits(any_db_gateway: Running) -> None:
    api = any_db_gateway.api
    await any_db_gateway.register({**stdio_fixture("a"), "pin": "off"})  # its new tool must show, not wait
    await any_db_gateway.register(stdio_fixture("b"))
    assert (await api.patch("/api/v1/tools/b__add", json={"name": "plus"})).status_code == 200
    await any_db_gateway.create_server({"name": "vs", "upstreams": ["a"], "tools": ["b__add"], "prefix": "never"})
    # Upstream `a` later grows a tool "plus": the accepted server now has a collision it reports.
    async with any_db_gateway.client("vs") as client:
        assert (await client.call_tool("add_tool", {"name": "plus"})).content[0].text == "added"
    assert (await api.post("/api/v1/upstreams/a/refresh")).status_code == 200
    server = (await api.get("/api/v1/servers/vs")).json()
    assert any("'plus'" in p for p in server["problems"])

    # Edits that add no collision are still accepted...
    response = await api.patch("/api/v1/tools/a__fail", json={"description": "Unrelated."})
    assert response.status_code == 200, response.text
    # ...one that adds a new collision is not...
    assert "'add'" in assert_problem(await api.patch("/api/v1/tools/a__echo", json={"name": "add"}), 409)
    # ...and the one that resolves it clears the problem.
    response = await api.patch("/api/v1/tools/a__plus", json={"enabled": False})
    assert response.status_code == 200, response.text
    server = (await api.get("/api/v1/servers/vs")).json()
    assert server["problems"] == []
    assert "plus" in server["exposed"]["tools"]
