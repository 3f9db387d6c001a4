"""Widely used third-party MCP servers over stdio behind Bastion, driven by the SDK client in both eras:
`@modelcontextprotocol/server-filesystem` (asks its client for roots/list and confines itself to them),
`@modelcontextprotocol/server-memory` (a knowledge graph kept in a file) and
`@modelcontextprotocol/server-sequential-thinking` (structured results). Pinned in tools/package.json.

server-filesystem keeps one set of allowed directories per process, taken from the roots its client
gives it, so it is registered `per_session`: each caller that declares roots gets a process of its
own, and must see its own roots there, never another caller's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, ListRootsResult, Root

from tests.harness import ROOT, Running, serve, settings_for
from tests.identity import login, make_user, signed_in

pytestmark = [pytest.mark.anyio, pytest.mark.node, pytest.mark.database_free]

MODES = ["legacy", "2026-07-28"]
PACKAGES = ROOT / "tools" / "node_modules" / "@modelcontextprotocol"
FILESYSTEM = PACKAGES / "server-filesystem" / "dist" / "index.js"
MEMORY = PACKAGES / "server-memory" / "dist" / "index.js"
THINKING = PACKAGES / "server-sequential-thinking" / "dist" / "index.js"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's database and server-memory's file (MEMORY_FILE_PATH)."""
    return Path(tmp_path_factory.mktemp("third-party"))


@pytest.fixture(scope="module")
async def gateway(home: Path) -> AsyncIterator[Running]:
    """A Bastion with server-filesystem behind the public virtual server `files` (a process per caller)
    and `shared-files` (one for all), and server-memory and server-sequential-thinking behind `notes`."""
    for entry in (FILESYSTEM, MEMORY, THINKING):
        if not entry.exists():
            pytest.fail(f"{entry} is missing: run scripts/install-node-tools first")
    async with serve(settings_for(f"sqlite+aiosqlite:///{home / 'bastion.db'}")) as running:
        # No directory on the command line: each process takes its caller's roots, or has none.
        fs = {"transport": "stdio", "command": "node", "args": [str(FILESYSTEM)], "isolation": "per_session"}
        memory = {"transport": "stdio", "command": "node", "args": [str(MEMORY)], "env": {"MEMORY_FILE_PATH": str(home / "memory.jsonl")}}
        thinking = {"transport": "stdio", "command": "node", "args": [str(THINKING)], "env": {"DISABLE_THOUGHT_LOGGING": "true"}}
        # As an operator would run it for everyone: one process, the directory on its command line.
        (home / "shared").mkdir()
        operator = {"transport": "stdio", "command": "node", "args": [str(FILESYSTEM), str(home / "shared")]}
        for name, body in (("fs", fs), ("opfs", operator), ("mem", memory), ("think", thinking)):
            await running.register({"name": name, **body})
        await running.create_server({"name": "files", "upstreams": ["fs"], "visibility": "public"})
        await running.create_server({"name": "shared-files", "upstreams": ["opfs"]})
        await running.create_server({"name": "notes", "upstreams": ["mem", "think"]})
        yield running


async def new_developer(gateway: Running) -> str:
    email = f"dev-{uuid.uuid4().hex[:10]}@example.com"
    await make_user(gateway, email, "developer")
    return email


async def new_user(gateway: Running) -> str:
    """A fresh developer's MCP token: callers of their own (each test its own, in either era)."""
    answer = await login(gateway, await new_developer(gateway))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


async def api_token(gateway: Running, email: str, name: str) -> str:
    """One more credential of `email`'s: an API token for server `files` (as a second app would hold)."""
    async with signed_in(gateway, email) as api:
        created = await api.post("/api/v1/tokens", json={"name": name, "servers": ["files"]})
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


def text(result: CallToolResult) -> str:
    assert result.content and result.content[0].type == "text", result.content
    return str(result.content[0].text)


class Rooted:
    """A caller whose roots are `directories`; notes when the upstream has asked for them."""

    def __init__(self, *directories: Path) -> None:
        self.directories = directories
        self.asked = anyio.Event()
        self.times = 0

    async def list_roots(self, _ctx: Any) -> ListRootsResult:
        self.times += 1
        self.asked.set()
        return ListRootsResult(roots=[Root(uri=d.as_uri()) for d in self.directories])  # type: ignore[arg-type]


@asynccontextmanager
async def rooted_client(gateway: Running, mode: str, token: str, caller: Rooted) -> AsyncIterator[Client]:
    """A client of `files` whose roots have taken at server-filesystem.

    The server asks for roots once its session is initialized and applies the answer while it goes
    on serving, so a call racing the answer finds no directory allowed (directly as well as through
    Bastion). Bastion opens the caller's process at its first call: after that, and once the caller
    was asked, calls are repeated (each a round trip, no sleep) until some roots have taken (whose,
    the tests check)."""
    async with gateway.client("files", mode=mode, token=token, list_roots_callback=caller.list_roots) as client:
        await allowed_once_asked(client, caller)
        yield client


async def allowed_once_asked(client: Client, caller: Rooted) -> list[str]:
    """The directories the caller's process allows once some roots took (see `rooted_client`)."""
    with anyio.fail_after(30):
        allowed = await allowed_directories(client)
        if not allowed:
            await caller.asked.wait()
        while not allowed:
            allowed = await allowed_directories(client)
    return allowed


async def allowed_directories(client: Client) -> list[str]:
    result = await client.call_tool("fs__list_allowed_directories", {})
    assert result.is_error is not True, result.content
    head, *lines = text(result).splitlines()
    assert head == "Allowed directories:"
    return [line for line in lines if line]


@pytest.mark.parametrize("mode", MODES)
async def test_third_party_tools_are_listed_with_prefix_and_schemas(gateway: Running, mode: str) -> None:
    async with gateway.client("files", mode=mode) as files, gateway.client("notes", mode=mode) as notes:
        fs_tools = {t.name: t for t in (await files.list_tools()).tools}
        notes_tools = {t.name: t for t in (await notes.list_tools()).tools}
    assert {"fs__read_text_file", "fs__write_file", "fs__list_directory", "fs__search_files", "fs__list_allowed_directories"} <= set(fs_tools)
    assert set(fs_tools["fs__write_file"].input_schema["required"]) == {"path", "content"}
    assert {"mem__create_entities", "mem__read_graph", "mem__search_nodes", "think__sequentialthinking"} <= set(notes_tools)
    assert notes_tools["mem__create_entities"].input_schema["properties"]["entities"]["type"] == "array"


@pytest.mark.parametrize("mode", MODES)
async def test_filesystem_works_within_the_callers_roots(gateway: Running, tmp_path: Path, mode: str) -> None:
    mine, elsewhere = tmp_path / "mine", tmp_path / "elsewhere"
    (mine / "docs").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("not yours")
    token = await new_user(gateway)
    async with rooted_client(gateway, mode, token, Rooted(mine)) as client:
        assert await allowed_directories(client) == [str(mine.resolve())]
        note = mine / "docs" / "note.md"
        written = await client.call_tool("fs__write_file", {"path": str(note), "content": "# Bastion ✓\nline two\n"})
        assert written.is_error is not True, written.content
        assert note.read_text() == "# Bastion ✓\nline two\n"
        read = await client.call_tool("fs__read_text_file", {"path": str(note)})
        assert read.is_error is not True and text(read) == "# Bastion ✓\nline two\n"
        assert read.structured_content == {"content": "# Bastion ✓\nline two\n"}
        listed = await client.call_tool("fs__list_directory", {"path": str(mine)})
        assert text(listed).splitlines() == ["[DIR] docs"]
        found = await client.call_tool("fs__search_files", {"path": str(mine), "pattern": "**/*.md"})
        assert text(found).splitlines() == [str(note.resolve())]
        outside = await client.call_tool("fs__read_text_file", {"path": str(elsewhere / "secret.txt")})
        assert outside.is_error is True
        assert "Access denied" in text(outside) and "not yours" not in text(outside)


@pytest.mark.parametrize(
    ("alice_mode", "bob_mode", "one_user"),
    [
        ("legacy", "legacy", False),
        ("2026-07-28", "2026-07-28", False),
        ("legacy", "2026-07-28", False),
        ("legacy", "legacy", True),  # two 2025-11-25 sessions of one user: a process each
        # Two 2026-07-28 clients of one user (no session): each signed in on its own, a process each.
        ("2026-07-28", "2026-07-28", True),
    ],
)
async def test_two_callers_with_different_roots_each_see_only_their_own(
    gateway: Running, tmp_path: Path, alice_mode: str, bob_mode: str, one_user: bool
) -> None:
    """Two callers on server-filesystem through one Bastion at the same time, each with their own
    roots: each process is given its own caller's roots, and neither reaches the other's files."""
    homes = {who: tmp_path / who for who in ("alice", "bob")}
    for who, home in homes.items():
        home.mkdir()
        (home / f"{who}.txt").write_text(f"{who}'s file")
    alice, bob = Rooted(homes["alice"]), Rooted(homes["bob"])
    email = await new_developer(gateway)
    tokens = [await api_token(gateway, email, "desktop")]
    if not one_user:
        tokens.append(await new_user(gateway))
    else:  # one token for two 2025-11-25 sessions; a 2026-07-28 client is told apart by its credential
        tokens.append(tokens[0] if alice_mode == "legacy" else await api_token(gateway, email, "ide"))
    async with (
        rooted_client(gateway, alice_mode, tokens[0], alice) as alice_client,
        rooted_client(gateway, bob_mode, tokens[1], bob) as bob_client,
    ):
        for client, who, other in ((alice_client, "alice", "bob"), (bob_client, "bob", "alice")):
            assert await allowed_directories(client) == [str(homes[who].resolve())]
            listed = await client.call_tool("fs__list_directory", {"path": str(homes[who])})
            assert text(listed).splitlines() == [f"[FILE] {who}.txt"]
            for tool in ("fs__read_text_file", "fs__list_directory"):
                target = homes[other] / f"{other}.txt" if tool == "fs__read_text_file" else homes[other]
                refused = await client.call_tool(tool, {"path": str(target)})
                assert refused.is_error is True and "Access denied" in text(refused), (who, tool, refused.content)
                assert f"{other}'s file" not in text(refused) and f"[FILE] {other}.txt" not in text(refused)
            found = await client.call_tool("fs__search_files", {"path": str(homes[other]), "pattern": "*.txt"})
            assert found.is_error is True and "Access denied" in text(found)
        # Each was asked for its own roots on its own process: still apart after the other's calls.
        assert await allowed_directories(alice_client) == [str(homes["alice"].resolve())]


@pytest.mark.parametrize("mode", MODES)
async def test_a_shared_filesystem_process_is_never_given_a_callers_roots(gateway: Running, home: Path, mode: str) -> None:
    """`isolation: shared` (the default): the one process serves every caller, so its session declares
    no roots and the server keeps the operator's directory; no caller is asked or sets another's."""
    caller = Rooted(home)
    async with gateway.client("shared-files", mode=mode, list_roots_callback=caller.list_roots) as client:
        result = await client.call_tool("opfs__list_allowed_directories", {})
        note = home / "shared" / f"{mode}.txt"
        written = await client.call_tool("opfs__write_file", {"path": str(note), "content": mode})
        outside = await client.call_tool("opfs__list_directory", {"path": str(home)})
    assert text(result).splitlines() == ["Allowed directories:", str((home / "shared").resolve())]
    assert written.is_error is not True and note.read_text() == mode
    assert outside.is_error is True and "Access denied" in text(outside)
    assert not caller.asked.is_set()


async def test_a_callers_changed_roots_reach_its_own_process(gateway: Running, tmp_path: Path) -> None:
    """Directly, server-filesystem asks again on notifications/roots/list_changed and moves to the new
    roots; through Bastion the caller's own process must be told and asked the same way."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    caller = Rooted(first)
    moved = False
    async with rooted_client(gateway, "legacy", await new_user(gateway), caller) as client:
        assert await allowed_directories(client) == [str(first.resolve())]
        caller.directories, caller.asked = (second,), anyio.Event()
        await client.send_roots_list_changed()
        with anyio.move_on_after(5):  # a guard, not a timing: directly the server asks again within ms
            await caller.asked.wait()
            while not moved:
                moved = await allowed_directories(client) == [str(second.resolve())]
    assert moved, "the caller's new roots never reached its server-filesystem process"


async def test_a_callers_changed_roots_are_not_told_to_another_callers_process(gateway: Running, tmp_path: Path) -> None:
    """Two 2025-11-25 callers of one user, each on its own process: when one changes its roots, only
    its own process is told, asks only that caller, and moves; the other's process keeps its roots.
    Each changes in turn, and each process is asked exactly once: a notice told to both processes
    would have one of them ask twice (or the wrong caller)."""
    homes = {who: tmp_path / who for who in ("alice", "bob", "alice2", "bob2")}
    for home in homes.values():
        home.mkdir()
    token = await new_user(gateway)
    alice, bob = Rooted(homes["alice"]), Rooted(homes["bob"])
    async with (
        rooted_client(gateway, "legacy", token, alice) as alice_client,
        rooted_client(gateway, "legacy", token, bob) as bob_client,
    ):
        alice.times = bob.times = 0
        with anyio.fail_after(30):
            for caller, client, moved in ((alice, alice_client, "alice2"), (bob, bob_client, "bob2")):
                caller.directories, caller.asked = (homes[moved],), anyio.Event()
                await client.send_roots_list_changed()
                await caller.asked.wait()
                while await allowed_directories(client) != [str(homes[moved].resolve())]:
                    pass
        assert (alice.times, bob.times) == (1, 1)
        assert await allowed_directories(alice_client) == [str(homes["alice2"].resolve())]
        assert await allowed_directories(bob_client) == [str(homes["bob2"].resolve())]


@pytest.mark.parametrize("mode", MODES)
async def test_memory_keeps_a_knowledge_graph_in_its_file(gateway: Running, home: Path, mode: str) -> None:
    person, language = f"Ada-{mode}-{uuid.uuid4().hex[:6]}", f"Analytical-{mode}"
    async with gateway.client("notes", mode=mode) as client:
        created = await client.call_tool(
            "mem__create_entities",
            {
                "entities": [
                    {"name": person, "entityType": "person", "observations": ["wrote the first published program"]},
                    {"name": language, "entityType": "machine", "observations": ["designed by Babbage"]},
                ]
            },
        )
        assert created.is_error is not True, created.content
        assert [e["name"] for e in created.structured_content["entities"]] == [person, language]
        related = await client.call_tool(
            "mem__create_relations", {"relations": [{"from": person, "to": language, "relationType": "programmed"}]}
        )
        assert related.is_error is not True, related.content
        graph = (await client.call_tool("mem__read_graph", {})).structured_content
        found = await client.call_tool("mem__search_nodes", {"query": "published program"})
    assert {e["name"] for e in graph["entities"]} >= {person, language}
    assert {"from": person, "to": language, "relationType": "programmed"} in graph["relations"]
    assert found.is_error is not True
    assert [e["name"] for e in found.structured_content["entities"] if e["name"] == person] == [person]
    assert all("published program" in " ".join(e["observations"]) for e in found.structured_content["entities"])
    assert json.loads(text(found)) == found.structured_content
    stored = [json.loads(line) for line in (home / "memory.jsonl").read_text().splitlines() if line]
    assert {"type": "entity", "name": person, "entityType": "person", "observations": ["wrote the first published program"]} in stored


@pytest.mark.parametrize("mode", MODES)
async def test_sequential_thinking_returns_structured_content(gateway: Running, mode: str) -> None:
    async with gateway.client("notes", mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        step = {"thought": f"first step ({mode})", "thoughtNumber": 1, "totalThoughts": 2, "nextThoughtNeeded": True}
        result = await client.call_tool("think__sequentialthinking", step)
    assert tools["think__sequentialthinking"].output_schema is not None
    assert result.is_error is not True, result.content
    assert result.structured_content is not None
    assert {k: result.structured_content[k] for k in ("thoughtNumber", "totalThoughts", "nextThoughtNeeded")} == {
        "thoughtNumber": 1, "totalThoughts": 2, "nextThoughtNeeded": True,
    }
    assert result.structured_content["thoughtHistoryLength"] >= 1
    assert json.loads(text(result)) == result.structured_content
