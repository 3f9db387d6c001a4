"""Several Bastion replicas sharing PostgreSQL and Redis: any replica serves the next request of any
2025-11-25 session, a stolen session id finds nothing, a deleted session is gone everywhere, and a
client resumes a stream with Last-Event-ID on another replica."""

from __future__ import annotations

import base64
import json
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import ElicitResult, LoggingMessageNotificationParams, ResourceUpdatedNotification
from redis.asyncio import Redis

from tests.e2e.test_bridge import asking_url  # noqa: F401 - the module fixture, shared
from tests.harness import (
    TOKEN,
    HttpUpstream,
    Running,
    http_fixture,
    open_raw_session,
    postgres_database,
    serve,
    session_headers,
    settings_for,
    stdio_fixture,
)

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"
LEGACY = "2025-11-25"


class Router(httpx2.AsyncBaseTransport):
    """Sends each request to the next replica in turn (a load balancer with no stickiness), or to
    one replica when pinned; remembers which replica answered what."""

    def __init__(self, bases: list[str]) -> None:
        self._ports = [httpx2.URL(b).port for b in bases]
        self._inner = httpx2.AsyncHTTPTransport()
        self._next = 0
        self.pinned: int | None = None
        self.served: list[tuple[int, str, int]] = []
        """(replica, HTTP method, status) of each request."""
        self.stream_opened = anyio.Event()
        """Set once a GET (the session's standalone stream) is answered."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.pinned is not None:
            replica = self.pinned
        else:
            replica, self._next = self._next, (self._next + 1) % len(self._ports)
        request.url = request.url.copy_with(port=self._ports[replica])
        response = await self._inner.handle_async_request(request)
        self.served.append((replica, request.method, response.status_code))
        if request.method == "GET":
            self.stream_opened.set()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class Cluster:
    replicas: list[Running]
    redis: Redis
    prefix: str
    routers: list[Router] = field(default_factory=list)

    def url(self, replica: int = 0) -> str:
        return self.replicas[replica].mcp_url("vs")

    def client(self, router: Router, token: str = TOKEN, **kwargs: Any) -> Client:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=None), transport=router
        )
        return Client(streamable_http_client(self.url(), http_client=http), mode="legacy", **kwargs)

    def router(self) -> Router:
        router = Router([r.base_url for r in self.replicas])
        self.routers.append(router)
        return router


@asynccontextmanager
async def running_cluster(upstream: dict[str, Any], count: int = 3) -> AsyncIterator[Cluster]:
    """`count` replicas on one fresh PostgreSQL database and the local Redis, under a prefix of
    their own, with the virtual server `vs` in front of `upstream` (as `fx`)."""
    prefix = f"bastion-test-{uuid.uuid4().hex[:12]}"
    key = base64.b64encode(os.urandom(32)).decode()
    redis = Redis.from_url(REDIS_URL)
    try:
        async with postgres_database() as database, AsyncExitStack() as stack:
            settings = settings_for(database, redis_url=REDIS_URL, redis_prefix=prefix, state_key=key)
            first = await stack.enter_async_context(serve(settings))
            await first.register(upstream)
            await first.create_server({"name": "vs", "upstreams": [upstream["name"]]})
            # The others start after the server exists: they read the configuration at start.
            others = [await stack.enter_async_context(serve(settings)) for _ in range(count - 1)]
            yield Cluster([first, *others], redis, prefix)
    finally:
        # After the replicas stopped: what they wrote while shutting down goes too.
        names = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if names:
            await redis.delete(*names)
        await redis.aclose()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with running_cluster(stdio_fixture("fx")) as running:
        yield running


def holders(cluster: Cluster) -> list[int]:
    """Which replicas hold a live SDK session of `vs` (white box: the replica's session manager)."""
    out = []
    for index, replica in enumerate(cluster.replicas):
        front = replica.bastion.front._fronts.get("vs")
        if front is not None and any(front.manager.holds(sid) for sid in list(front.held)):
            out.append(index)
    return out


async def test_a_session_opened_on_one_replica_is_served_by_every_replica(cluster: Cluster) -> None:
    router = cluster.router()
    async with cluster.client(router) as client:
        for _ in range(3):
            tools = await client.list_tools()
            assert "fx__echo" in {t.name for t in tools.tools}
            result = await client.call_tool("fx__echo", {"text": "hi"})
            assert result.content[0].text == "hi"
    posts = [(replica, status) for replica, method, status in router.served if method == "POST"]
    assert {replica for replica, _ in posts} == {0, 1, 2}
    assert all(status in (200, 202) for _, status in posts), posts


async def test_a_log_level_set_through_one_replica_applies_on_another(cluster: Cluster) -> None:
    router = cluster.router()
    logs: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    router.pinned = 0
    async with cluster.client(router, logging_callback=on_log) as client:
        router.pinned = 1
        await client.call_tool("fx__echo", {"text": "restored on 1"})
        assert logs == []
        router.pinned = 0
        await client.set_logging_level("info")
        router.pinned = 1
        # Replica 1 learns of the change on Redis pub/sub, with no event this test can await:
        # bounded polling, each try a real call served by replica 1.
        with anyio.fail_after(10):
            while not logs:
                result = await client.call_tool("fx__log", {"message": "hello"})
                assert result.content[0].text == "logged"
        assert {(e.level, e.data) for e in logs} == {("info", "hello")}
    assert {replica for replica, method, _ in router.served if method == "POST"} == {0, 1}


async def _post(url: str, token: str, session_id: str, body: dict[str, Any]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, headers=session_headers(session_id, token), json=body)


async def _open_session(url: str) -> str:
    """Initialize a session at `url` by hand; its id."""
    async with httpx2.AsyncClient(timeout=30) as http:
        return await open_raw_session(http, url)


LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}


async def test_another_token_presenting_the_session_id_finds_no_session(cluster: Cluster) -> None:
    session_id = await _open_session(cluster.url(0))
    assert (await _post(cluster.url(1), TOKEN, session_id, LIST)).status_code == 200  # restored on 1
    created = await cluster.replicas[0].api.post("/api/v1/tokens", json={"name": "other", "servers": ["vs"]})
    assert created.status_code == 201, created.text
    other = created.json()["token"]
    unknown = await _post(cluster.url(2), other, uuid.uuid4().hex, LIST)
    assert unknown.status_code == 404
    for replica in range(3):  # held there (0, 1) or not (2): the same answer as an unknown id
        stolen = await _post(cluster.url(replica), other, session_id, LIST)
        assert (stolen.status_code, stolen.json()) == (404, unknown.json())
    assert (await _post(cluster.url(2), TOKEN, session_id, LIST)).status_code == 200  # still the owner's


async def test_a_deleted_session_is_gone_on_every_replica(cluster: Cluster) -> None:
    session_id = await _open_session(cluster.url(0))
    for replica in (1, 2):
        assert (await _post(cluster.url(replica), TOKEN, session_id, LIST)).status_code == 200
    assert holders(cluster) == [0, 1, 2]
    headers = {"Authorization": f"Bearer {TOKEN}", "Mcp-Session-Id": session_id, "Mcp-Protocol-Version": LEGACY}
    async with httpx2.AsyncClient(timeout=30) as http:
        assert (await http.delete(cluster.url(1), headers=headers)).status_code == 200
    # The other replicas end their copies on the deletion notice (pub/sub: no event to await here).
    with anyio.fail_after(10):
        while holders(cluster):
            await anyio.sleep(0.01)
    for replica in range(3):
        assert (await _post(cluster.url(replica), TOKEN, session_id, LIST)).status_code == 404


async def _sse_events(response: httpx2.Response, count: int) -> list[dict[str, str]]:
    """The first `count` SSE events (id and data fields) of a streaming response."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if current:
                events.append(current)
                current = {}
            if len(events) == count:
                break
            continue
        name, _, value = line.partition(":")
        current[name] = value.removeprefix(" ")
    return events


async def test_a_stream_resumes_with_last_event_id_on_another_replica(cluster: Cluster) -> None:
    session_id = await _open_session(cluster.url(0))
    headers = session_headers(session_id)
    # A progress token sends the call down the SDK path: an SSE stream with a priming event.
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "fx__echo", "arguments": {"text": "resumed"}, "_meta": {"progressToken": "p"}},
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        async with http.stream("POST", cluster.url(0), headers=headers, json=call) as response:
            with anyio.fail_after(20):
                priming, answer = await _sse_events(response, 2)
        # SEP-1699: the priming event (an id, no data) tells the client how soon to come back.
        assert priming["data"] == "" and int(priming["retry"]) > 0
        assert json.loads(answer["data"])["result"]["content"][0]["text"] == "resumed"
        # The client lost the stream after the priming event; it reconnects to replica 2.
        resume = {k: v for k, v in headers.items() if k != "Content-Type"} | {"Last-Event-ID": priming["id"]}
        async with http.stream("GET", cluster.url(2), headers=resume) as replayed:
            assert replayed.status_code == 200
            with anyio.fail_after(20):
                (event,) = await _sse_events(replayed, 1)
    assert event["id"] == answer["id"]
    assert json.loads(event["data"]) == json.loads(answer["data"])


async def test_a_plain_call_that_logs_resumes_on_another_replica(cluster: Cluster) -> None:
    """The fast path's streamed answers (a plain call whose upstream logs) are kept in the same store."""
    session_id = await _open_session(cluster.url(0))
    headers = session_headers(session_id)
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "fx__log", "arguments": {"message": "kept"}}}
    async with httpx2.AsyncClient(timeout=30) as http:
        async with http.stream("POST", cluster.url(0), headers=headers, json=call) as response:
            with anyio.fail_after(20):
                priming, logged, answer = await _sse_events(response, 3)
        assert priming["data"] == "" and int(priming["retry"]) > 0
        assert json.loads(logged["data"])["params"]["data"] == "kept"
        resume = {k: v for k, v in headers.items() if k != "Content-Type"} | {"Last-Event-ID": priming["id"]}
        async with http.stream("GET", cluster.url(2), headers=resume) as replayed:
            assert replayed.status_code == 200
            with anyio.fail_after(20):
                events = await _sse_events(replayed, 2)
    assert [(e["id"], json.loads(e["data"])) for e in events] == [
        (logged["id"], json.loads(logged["data"])),
        (answer["id"], json.loads(answer["data"])),
    ]


async def test_session_records_and_events_in_redis_reveal_neither_id_nor_content(cluster: Cluster) -> None:
    session_id = await _open_session(cluster.url(0))
    secret = "a-very-recognisable-client-name"
    # Session records and their event streams (the prefix also holds replica-wide state: the
    # config version, the leader lease).
    names = [k async for k in cluster.redis.scan_iter(match=f"{cluster.prefix}:session:*")]
    names += [k async for k in cluster.redis.scan_iter(match=f"{cluster.prefix}:events:*")]
    assert names
    for name in names:
        assert session_id.encode() not in name
        kind = await cluster.redis.type(name)
        if kind == b"string":
            value = await cluster.redis.get(name)
            assert b'"t"' not in value and b"clientInfo" not in value and secret.encode() not in value
            assert 0 < await cluster.redis.pttl(name) <= 1800 * 1000


async def test_an_answer_posted_to_another_replica_reaches_the_one_that_asked(asking_url: str) -> None:
    async with running_cluster({"name": "ask", "transport": "sse", "url": asking_url}, count=2) as cluster:
        router = cluster.router()
        asked: list[int] = []

        async def elicit(_ctx: Any, _params: Any) -> ElicitResult:
            asked.append(len(router.served))
            return ElicitResult(action="accept", content={"name": "Ada"})

        async def progress(_progress: float, _total: float | None, _message: str | None) -> None:
            pass

        async with cluster.client(router, elicitation_callback=elicit) as client:
            for _ in range(2):  # an answer that went unrelayed would leave the call waiting for ever
                # A progress token keeps the call on the SDK path: the question rides the call's stream.
                with anyio.fail_after(15):
                    result = await client.call_tool("ask__ask_name", {}, progress_callback=progress)
                assert result.content[0].text == "Hello, Ada!"
    assert len(asked) == 2
    assert {replica for replica, method, _ in router.served if method == "POST"} == {0, 1}


@pytest.fixture(scope="module")
def counter_url() -> Iterator[HttpUpstream]:
    with http_fixture("streamable-http", "--counter") as upstream:
        yield upstream


async def test_a_subscription_made_through_one_replica_is_honoured_by_the_one_holding_the_stream(
    counter_url: HttpUpstream,
) -> None:
    updates: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            arrived.set()

    async with running_cluster(counter_url.body("fx"), count=2) as cluster:
        router = cluster.router()
        router.pinned = 0  # the session opens, and its GET stream stays, on replica 0
        async with cluster.client(router, message_handler=on_message) as client:
            with anyio.fail_after(10):
                await router.stream_opened.wait()
            router.pinned = 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await client.subscribe_resource("fixture://counter")
            # Replica 0 learns of the subscription on Redis pub/sub (no event to await): bounded
            # polling, each try a real change of the resource.
            with anyio.fail_after(15):
                while not arrived.is_set():
                    assert not (await client.call_tool("fx__bump", {})).is_error
                    with anyio.move_on_after(0.5):
                        await arrived.wait()
    assert set(updates) == {"fixture://counter"}
    assert [replica for replica, method, _ in router.served if method == "GET"] == [0]


async def test_one_replica_without_redis_refuses_another_token_on_a_session_too(gateway: Running) -> None:
    """The in-process store: the same rule, and the session otherwise served as before."""
    await gateway.register(stdio_fixture("fx"))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"]})
    url = gateway.mcp_url("vs")
    session_id = await _open_session(url)
    created = await gateway.api.post("/api/v1/tokens", json={"name": "other", "servers": ["vs"]})
    other = created.json()["token"]
    unknown = await _post(url, other, uuid.uuid4().hex, LIST)
    stolen = await _post(url, other, session_id, LIST)
    assert unknown.status_code == 404
    assert (stolen.status_code, stolen.json()) == (404, unknown.json())
    assert (await _post(url, TOKEN, session_id, LIST)).status_code == 200


async def test_a_question_reaches_the_client_on_the_get_stream_another_replica_holds(asking_url: str) -> None:
    async with running_cluster({"name": "ask", "transport": "sse", "url": asking_url}, count=2) as cluster:
        router = cluster.router()
        asked = 0

        async def elicit(_ctx: Any, _params: Any) -> ElicitResult:
            nonlocal asked
            asked += 1
            return ElicitResult(action="accept", content={"name": "Ada"})

        router.pinned = 0  # the session opens, and its GET stream stays, on replica 0
        async with cluster.client(router, elicitation_callback=elicit) as client:
            with anyio.fail_after(10):
                await router.stream_opened.wait()
            router.pinned = None
            for _ in range(3):  # plain calls: the fast path, its questions on the GET stream
                with anyio.fail_after(15):
                    result = await client.call_tool("ask__ask_name", {})
                assert result.content[0].text == "Hello, Ada!"
    assert asked == 3
    assert [replica for replica, method, _ in router.served if method == "GET"] == [0]
    assert {replica for replica, method, _ in router.served if method == "POST"} == {0, 1}


async def test_an_async_facade_call_is_followed_and_answered_on_another_replica(asking_url: str) -> None:
    # Behind a load balancer the status URL of a `Prefer: respond-async` call may reach any replica:
    # the one running the call keeps its record in Redis (sealed, under a hashed key), the others
    # answer from it and queue the caller's answer for it.
    from tests.e2e.test_facade_async import ASYNC, events

    NAME = "Ada Lovelace 1815"  # long enough that a random sealed record cannot hold it by chance

    async with running_cluster({"name": "ask", "transport": "sse", "url": asking_url}, count=2) as cluster:
        runner, other = cluster.replicas
        started = await runner.api.post("/api/v1/servers/vs/tools/ask__ask_name", json={}, headers=ASYNC)
        assert started.status_code == 202, started.text
        call = started.json()
        with anyio.fail_after(30):
            async for name, question in events(other.api, call["events_url"], until="input_required"):
                assert name == "input_required"
            assert question["params"]["message"] == "What is your name?"
            assert (await other.api.get(call["status_url"])).json()["state"] == "input_required"
            answered = await other.api.post(f"{call['status_url']}/answer", json={"action": "accept", "content": {"name": NAME}})
            assert answered.status_code == 202, answered.text
            async for name, final in events(other.api, call["events_url"], until="result"):
                pass
        assert final["state"] == "completed" and final["result"]["content"][0]["text"] == f"Hello, {NAME}!"
        assert (await other.api.get(call["status_url"])).json()["result"] == final["result"]
        assert (await other.api.post(f"{call['status_url']}/answer", json={"action": "accept"})).status_code == 409

        # Another caller presenting the URL finds nothing there either.
        made = await other.api.post("/api/v1/tokens", json={"name": "other", "servers": "*"})
        stranger = {"Authorization": f"Bearer {made.json()['token']}"}
        assert (await other.api.get(call["status_url"], headers=stranger)).status_code == 404
        assert (await other.api.get(call["events_url"], headers=stranger)).status_code == 404

        # What Redis holds reveals neither the call's id nor what it carried.
        names = [k async for k in cluster.redis.scan_iter(match=f"{cluster.prefix}:call:*")]
        assert names and all(call["id"].encode() not in n for n in names)
        for name in names:
            value = await cluster.redis.get(name)
            assert NAME.encode() not in value and b"What is your name" not in value
