"""A real A2A agent for the A2A upstream tests, built with the official a2a-sdk (1.x).

Skills: `shout` answers the text upper-cased as an artifact, after a working status update;
`fail` ends the task failed; `ask` needs input first (input-required) and then echoes the answer.
Served in-process on loopback by the tests (`build_app(base_url)`); the card is at
/.well-known/agent-card.json, JSON-RPC at /a2a. Requests must carry `Authorization: Bearer
<AGENT_TOKEN>` (Bastion's own credential for it); `seen` records what arrived.
"""

from __future__ import annotations

from typing import Any

from a2a.helpers.proto_helpers import get_message_text, new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

AGENT_TOKEN = "agent-secret-0123456789"


class Executor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None
        text = get_message_text(message)
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        if text.startswith("fail"):
            await updater.failed(updater.new_agent_message([new_text_part("the agent could not do it")]))
            return
        if text.startswith("ask") and task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
            await updater.requires_input(updater.new_agent_message([new_text_part("what is your name?")]))
            return
        await updater.start_work(updater.new_agent_message([new_text_part("working on it")]))
        await updater.add_artifact([new_text_part(text.upper())], name="result")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def card(base_url: str) -> AgentCard:
    skills = [
        AgentSkill(id="shout", name="Shout", description="Answers the text in capitals.", tags=["text"]),
        AgentSkill(id="fail", name="Fail", description="Always fails.", tags=["test"]),
        AgentSkill(id="ask", name="Ask", description="Asks for a name first.", tags=["test"]),
    ]
    return AgentCard(
        name="Test agent",
        description="An A2A agent for Bastion's tests.",
        version="0.1.0",
        supported_interfaces=[AgentInterface(url=f"{base_url}/a2a", protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=skills,
    )


def guarded(app: ASGIApp, seen: dict[str, Any]) -> ASGIApp:
    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/a2a":
            headers = dict(scope["headers"])
            seen.setdefault("authorization", []).append(headers.get(b"authorization", b"").decode())
            if headers.get(b"authorization") != f"Bearer {AGENT_TOKEN}".encode():
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    return check


def build_app(seen: dict[str, Any]) -> ASGIApp:
    """The agent; its card names the URL it is reached on (`seen["base_url"]`, set once serving)."""
    agent_card = card("http://127.0.0.1")

    async def with_url(_card: AgentCard) -> AgentCard:
        return card(seen["base_url"])

    handler = DefaultRequestHandler(agent_executor=Executor(), task_store=InMemoryTaskStore(), agent_card=agent_card)
    routes = [*create_agent_card_routes(agent_card, card_modifier=with_url), *create_jsonrpc_routes(handler, "/a2a")]
    return guarded(Starlette(routes=routes), seen)
