"""Real-world OpenAPI documents Bastion did not write (tests/fixtures/openapi/real/README.md names
their sources and licences): GitHub's REST API (3.0, JSON, a slice), the USPTO Data Set API (3.0,
YAML, server variables, a form body), the expanded Swagger Petstore (2.0, YAML) and ReadMe's
parameter-style and circular-schema examples (3.1 and 3.0, YAML). Each is registered through the REST
API from a URL on loopback, its tools are checked (names, descriptions, valid input schemas with the
required parameters and no $ref left) and called against a service on loopback that answers as the
API would and records what it received (method, path, query, headers, body)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml
from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.harness import Running, serve_asgi

pytestmark = pytest.mark.anyio

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "openapi" / "real"


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Serves the fixtures at /docs/<file> and answers every other request as the API would (echoing
    a JSON object), recording what it received."""
    seen: list[dict[str, Any]] = []

    async def document(request: Request) -> Response:
        name = request.path_params["name"]
        text = (REAL / name).read_text()
        return PlainTextResponse(text, media_type="application/json" if name.endswith(".json") else "application/yaml")

    async def anything(request: Request) -> Response:
        body = await request.body()
        seen.append({
            "method": request.method,
            "path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": dict(request.headers),
            "body": body.decode(),
        })
        if request.method == "DELETE":
            return Response(status_code=204)
        if request.url.path.endswith("/markdown/raw"):
            return PlainTextResponse(f"<p>{body.decode()}</p>", media_type="text/html")
        return JSONResponse({"id": 1, "number": 1, "name": "thing"})

    app = Starlette(routes=[Route("/docs/{name}", document), Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    async with serve_asgi(app) as base:
        yield base, seen


async def _tools(gateway: Running, base: str, name: str, fixture: str, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "transport": "openapi", "spec_url": f"{base}/docs/{fixture}", **extra}
    await gateway.register(body)
    await gateway.create_server({"name": f"vs-{name}", "upstreams": [name]})
    tools: dict[str, Any] = {}
    async with gateway.client(f"vs-{name}") as client:
        cursor = None
        while True:
            listed = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
            tools.update({t.name: t for t in listed.tools})
            cursor = listed.next_cursor
            if not cursor:
                break
    for tool in tools.values():
        Draft202012Validator.check_schema(tool.input_schema)
        assert "$ref" not in json.dumps(tool.input_schema), tool.name
        assert tool.description and len(tool.name) <= 128
    return tools


async def _call(gateway: Running, server: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.api.post(f"/api/v1/servers/{server}/tools/{tool}", json=arguments)
    assert response.status_code == 200, response.text
    result = dict(response.json())
    assert not result["is_error"], result
    return result


async def test_github_rest_api_slice(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base, "gh", "github-api-slice.json", base_url=f"{base}/gh")
    assert set(tools) == {f"gh__{n}" for n in (
        "repos_get", "repos_delete", "repos_get-content", "issues_list-for-repo", "issues_create",
        "issues_add-labels", "search_repos", "markdown_render-raw",
    )}
    listing = tools["gh__issues_list-for-repo"]
    assert listing.input_schema["required"] == ["owner", "repo"]
    assert listing.input_schema["properties"]["state"]["enum"] == ["open", "closed", "all"]
    assert listing.description.startswith("List repository issues") and "GET /repos/{owner}/{repo}/issues" in listing.description
    assert tools["gh__issues_create"].input_schema["required"] == ["owner", "repo", "title"]
    assert tools["gh__repos_delete"].annotations.destructive_hint is True

    await _call(gateway, "vs-gh", "gh__issues_list-for-repo",
                {"owner": "octo cat", "repo": "hello", "state": "closed", "labels": "bug,ui", "per_page": 2})
    await _call(gateway, "vs-gh", "gh__issues_create", {"owner": "o", "repo": "r", "title": "Broken", "labels": ["bug"]})
    await _call(gateway, "vs-gh", "gh__issues_add-labels", {"owner": "o", "repo": "r", "issue_number": 7, "body": {"labels": ["a"]}})
    rendered = await _call(gateway, "vs-gh", "gh__markdown_render-raw", {"body": "# Hi"})
    assert rendered["content"][0]["text"] == "<p># Hi</p>"
    await _call(gateway, "vs-gh", "gh__repos_delete", {"owner": "o", "repo": "r"})
    got = [(s["method"], s["path"], s["query"]) for s in seen]
    assert got == [
        ("GET", "/gh/repos/octo%20cat/hello/issues", "state=closed&labels=bug%2Cui&per_page=2"),
        ("POST", "/gh/repos/o/r/issues", ""),
        ("POST", "/gh/repos/o/r/issues/7/labels", ""),
        ("POST", "/gh/markdown/raw", ""),
        ("DELETE", "/gh/repos/o/r", ""),
    ]
    assert json.loads(seen[1]["body"]) == {"title": "Broken", "labels": ["bug"]}
    assert seen[1]["headers"]["content-type"] == "application/json"
    assert json.loads(seen[2]["body"]) == {"labels": ["a"]}
    assert seen[3]["body"] == "# Hi" and seen[3]["headers"]["content-type"] == "text/plain"


async def test_github_answers_that_do_not_match_the_documented_schema_still_reach_the_caller(gateway: Running, api: Any) -> None:
    # Real APIs answer with less than their documents promise; an MCP client checks structured
    # content against the output schema, so an answer that breaks it must not fail the call.
    base, _ = api
    await _tools(gateway, base, "gh", "github-api-slice.json", base_url=f"{base}/gh")
    async with gateway.client("vs-gh") as client:
        got = await client.call_tool("gh__repos_get", {"owner": "o", "repo": "r"})
    assert got.is_error is not True
    assert json.loads(got.content[0].text) == {"id": 1, "number": 1, "name": "thing"}  # type: ignore[union-attr]


async def test_digitalocean_references_into_paths_with_percent_encoded_braces(gateway: Running, api: Any) -> None:
    # '#/paths/~1v2~1account~1keys~1%7Bssh_key_identifier%7D/get/parameters/0': a URI fragment,
    # percent-encoded. Ten documents of APIs.guru's directory were refused as pointing at nothing.
    base, seen = api
    tools = await _tools(gateway, base, "do", "digitalocean-ssh-keys-3.0.json", base_url=base)
    assert {"do__sshKeys_update", "do__sshKeys_delete", "do__sshKeys_get"} <= set(tools)
    update = tools["do__sshKeys_update"].input_schema
    assert update["required"][0] == "ssh_key_identifier" and "anyOf" in update["properties"]["ssh_key_identifier"]
    await _call(gateway, "vs-do", "do__sshKeys_update", {"ssh_key_identifier": 512189, "name": "laptop"})
    await _call(gateway, "vs-do", "do__sshKeys_delete", {"ssh_key_identifier": "3b:16:e4"})
    assert [(s["method"], s["path"]) for s in seen] == [("PUT", "/v2/account/keys/512189"), ("DELETE", "/v2/account/keys/3b%3A16%3Ae4")]
    assert json.loads(seen[0]["body"]) == {"name": "laptop"}


async def test_uspto_yaml_with_server_variables_and_a_form_body(gateway: Running, api: Any) -> None:
    base, seen = api
    host = base.removeprefix("http://")
    document = yaml.safe_load((REAL / "uspto-3.0.yaml").read_text())
    # The document's own server, with its variables; only the host is moved onto loopback.
    assert document["servers"][0]["url"] == "{scheme}://developer.uspto.gov/ds-api"
    document["servers"][0]["url"] = "{scheme}://" + host + "/ds-api"
    document["servers"][0]["variables"]["scheme"]["default"] = "http"
    await gateway.register({"name": "uspto", "transport": "openapi", "spec": yaml.safe_dump(document)})
    await gateway.create_server({"name": "vs", "upstreams": ["uspto"]})
    async with gateway.client("vs") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"uspto__list-data-sets", "uspto__list-searchable-fields", "uspto__perform-search"}
        search = tools["uspto__perform-search"].input_schema
        assert search["required"] == ["version", "dataset"]  # its body (criteria, start, rows) is optional
        assert search["properties"]["rows"]["default"] == 100
        found = await client.call_tool("uspto__perform-search", {"dataset": "oa_citations", "version": "v1", "criteria": "*:*", "rows": 5})
        assert found.is_error is not True
    assert seen[-1]["method"] == "POST" and seen[-1]["path"] == "/ds-api/oa_citations/v1/records"
    assert seen[-1]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen[-1]["body"] == "criteria=%2A%3A%2A&rows=5"


async def test_swagger_2_expanded_petstore_yaml(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base, "pets", "petstore-expanded-swagger-2.0.yaml", base_url=f"{base}/api")
    assert set(tools) == {"pets__findPets", "pets__addPet", "pets__find_pet_by_id", "pets__deletePet"}
    assert tools["pets__addPet"].input_schema["required"] == ["name"]
    assert tools["pets__find_pet_by_id"].input_schema["properties"]["id"]["type"] == "integer"
    # Pet is `allOf: [NewPet, {id}]`: an object, so the tool can say what it answers.
    assert tools["pets__find_pet_by_id"].output_schema is not None
    await _call(gateway, "vs-pets", "pets__findPets", {"tags": ["dog", "cat"], "limit": 3})
    await _call(gateway, "vs-pets", "pets__addPet", {"name": "rex", "tag": "dog"})
    await _call(gateway, "vs-pets", "pets__find_pet_by_id", {"id": 1})
    assert [(s["method"], s["path"], s["query"]) for s in seen] == [
        ("GET", "/api/pets", "tags=dog%2Ccat&limit=3"), ("POST", "/api/pets", ""), ("GET", "/api/pets/1", ""),
    ]
    assert json.loads(seen[1]["body"]) == {"name": "rex", "tag": "dog"}


ARRAY = ["blue", "black", "brown"]
OBJECT = {"R": 100, "G": 200, "B": 150}
STYLES = {
    # tool: (where the value shows, [primitive, array, object]) as OpenAPI's style tables spell them
    "paths_simple_nonExploded": ("path", ["blue", "blue,black,brown", "R,100,G,200,B,150"]),
    "paths_simple_exploded": ("path", ["blue", "blue,black,brown", "R=100,G=200,B=150"]),
    "paths_label_nonExploded": ("path", [".blue", ".blue,black,brown", ".R,100,G,200,B,150"]),
    "paths_label_exploded": ("path", [".blue", ".blue.black.brown", ".R=100.G=200.B=150"]),
    "paths_matrix_nonExploded": ("path", [";primitive=blue", ";array=blue,black,brown", ";object=R,100,G,200,B,150"]),
    "paths_matrix_exploded": ("path", [";primitive=blue", ";array=blue;array=black;array=brown", ";R=100;G=200;B=150"]),
    "query_form_exploded": ("query", ["primitive=blue", "array=blue&array=black&array=brown", "R=100&G=200&B=150"]),
    "query_form_nonExploded": ("query", ["primitive=blue", "array=blue%2Cblack%2Cbrown", "object=R%2C100%2CG%2C200%2CB%2C150"]),
    "query_deepObject_nonExploded": ("query", [None, None, "object%5BR%5D=100&object%5BG%5D=200&object%5BB%5D=150"]),
    "headers_simple_nonExploded": ("header", ["blue", "blue,black,brown", "R,100,G,200,B,150"]),
    "headers_simple_exploded": ("header", ["blue", "blue,black,brown", "R=100,G=200,B=150"]),
    "cookies_form_nonExploded": ("cookie", ["primitive=blue", "array=blue,black,brown", "object=R,100,G,200,B,150"]),
}


@pytest.mark.parametrize("tool", STYLES)
async def test_parameter_styles_are_serialized_as_openapi_says(gateway: Running, api: Any, tool: str) -> None:
    base, seen = api
    tools = await _tools(gateway, base, "styles", "parameters-style-3.1.yaml", base_url=base)
    assert f"styles__{tool}" in tools
    where, expected = STYLES[tool]
    names = [n for n, v in zip(("primitive", "array", "object"), expected, strict=True) if v is not None]
    values = {"primitive": "blue", "array": ARRAY, "object": OBJECT}
    await _call(gateway, "vs-styles", f"styles__{tool}", {n: values[n] for n in names})
    sent = seen[-1]
    shown = [v for v in expected if v is not None]
    if where == "path":
        assert sent["path"].rsplit("/", 3)[1:] == shown, sent["path"]
    elif where == "query":
        assert sent["query"] == "&".join(shown)
    elif where == "header":
        assert [sent["headers"][n] for n in names] == shown
    else:
        assert sent["headers"]["cookie"] == "; ".join(shown)


async def test_a_parameter_described_by_content_is_sent_as_json(gateway: Running, api: Any) -> None:
    base, seen = api
    document = yaml.safe_load((REAL / "petstore-expanded-swagger-2.0.yaml").read_text())
    spec = {"openapi": "3.1.0", "info": document["info"], "paths": {"/pets": {"get": {
        "operationId": "findPets",
        "parameters": [{"name": "filter", "in": "query", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"tag": {"type": "string"}, "max": {"type": "integer"}}}}}}],
        "responses": {"200": {"description": "pets"}},
    }}}}
    await gateway.register({"name": "pets", "transport": "openapi", "spec": spec, "base_url": base})
    await gateway.create_server({"name": "vs", "upstreams": ["pets"]})
    await _call(gateway, "vs", "pets__findPets", {"filter": {"tag": "dog", "max": 2}})
    assert json.loads(parse_qs(seen[-1]["query"])["filter"][0]) == {"tag": "dog", "max": 2}


async def test_recursive_schemas_are_cut_and_still_called(gateway: Running, api: Any) -> None:
    base, seen = api
    tools = await _tools(gateway, base, "circ", "schema-circular-3.0.yaml", base_url=base)
    assert set(tools) == {"circ__put_nestedTest", "circ__put_circular", "circ__post_not_quite_circular"}
    assert "(recursive: ZoneRules)" in json.dumps(tools["circ__post_not_quite_circular"].input_schema)
    await _call(gateway, "vs-circ", "circ__post_not_quite_circular", {"rules": {"transitions": [{"offsetBefore": {"id": "x", "rules": {}}}]}})
    assert json.loads(seen[-1]["body"]) == {"rules": {"transitions": [{"offsetBefore": {"id": "x", "rules": {}}}]}}


async def test_servers_of_path_items_and_operations_are_where_their_calls_go(gateway: Running) -> None:
    # The document's servers are on example.com; each is moved onto loopback (127.0.0.1 serves the
    # document, 127.0.0.2 stands for the other hosts), keeping where each is declared.
    seen: list[str] = []

    async def anything(request: Request) -> Response:
        seen.append(f"{request.url.hostname}{request.url.path}")
        return JSONResponse({})

    document = yaml.safe_load((REAL / "server-path-level-3.0.yaml").read_text())

    async def serve_document(_request: Request) -> Response:
        return JSONResponse(document)

    app = Starlette(routes=[Route("/docs/servers.json", serve_document), Route("/{path:path}", anything)])
    async with serve_asgi(app) as base, serve_asgi(Starlette(routes=[Route("/{path:path}", anything)]), host="127.0.0.2") as other:
        paths = document["paths"]
        document["servers"] = [{"url": "/v1"}]  # relative: to the document's URL
        paths["/operation-server-variables"]["get"]["servers"][0]["url"] = other + "/{version}"
        paths["/path-item-server-source"]["servers"][0]["url"] = other + "/ref"
        paths["/empty-operation-servers"]["servers"][0]["url"] = other + "/empty"
        await gateway.register({"name": "srv", "transport": "openapi", "spec_url": f"{base}/docs/servers.json"})
        await gateway.create_server({"name": "vs", "upstreams": ["srv"]})
        for path in paths:
            await _call(gateway, "vs", "srv__get" + path.replace("-", "_").replace("/", "_"), {})
    assert seen == [
        "127.0.0.1/v2/relative-path-server",
        "127.0.0.1/v3/relative-operation-server",
        "127.0.0.2/v3/operation-server-variables",
        "127.0.0.2/ref/path-item-ref-server",
        "127.0.0.2/ref/path-item-server-source",
        "127.0.0.2/empty/empty-operation-servers",
        "127.0.0.1/v1/empty-path-item-servers",
    ]


async def test_names_without_operation_ids_duplicated_non_ascii_or_very_long(gateway: Running, api: Any) -> None:
    base, seen = api
    document = yaml.safe_load((REAL / "petstore-expanded-swagger-2.0.yaml").read_text())
    paths = document["paths"]
    del paths["/pets"]["get"]["operationId"]
    paths["/pets"]["post"]["operationId"] = "deletePet"  # the same as DELETE /pets/{id}'s
    paths["/pets/{id}"]["get"]["operationId"] = "获取宠物"
    paths["/pets/{id}"]["delete"]["operationId"] = "supprimerAnimalDeCompagnieAvecUnIdentifiantTrèsTrèsLongQuiDépasseLaLimite" * 2
    await gateway.register({"name": "pets", "transport": "openapi", "spec": document, "base_url": base})
    await gateway.create_server({"name": "vs", "upstreams": ["pets"]})
    async with gateway.client("vs") as client:
        names = [t.name for t in (await client.list_tools()).tools]
    assert len(names) == len(set(names)) == 4
    assert "pets__get_pets" in names and "pets__deletePet" in names
    assert "pets__get_pets_id" in names  # a name of no ASCII letters says what it does instead
    long = next(n for n in names if n.startswith("pets__supprimer"))
    assert long.startswith("pets__supprimerAnimalDeCompagnieAvecUnIdentifiantTresTres") and len(long) <= 128
    await _call(gateway, "vs", "pets__get_pets_id", {"id": 4})
    assert seen[-1]["path"] == "/pets/4"
