"""An A2A agent (protocol 1.0, JSON-RPC binding) as an upstream whose skills are tools.

Discovery reads the agent card at the upstream's `url`; each skill becomes a tool taking a
`message` (and, to continue a task that asked for input, its `task_id`). A call sends one
`SendMessage` through `outbound.fetch` with Bastion's own credentials for the agent (the caller's
token never goes there) and turns the task into a tool result: artifacts as content, a failed
task as an error result, a task that needs input as a result naming the question and the task.

The agent sees one client (Bastion), so Bastion tells callers apart: each task and conversation
(context) an answer names is held by the caller it answered (`AgentTaskHolders`), and a call
naming a task or context its caller does not hold is refused before it reaches the agent, in the
same words whether it is another caller's or nobody's.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2

from bastion.core.destinations import check_destinations, origin_of, unapproved
from bastion.core.errors import UnknownAgentTask, UpstreamProtocolError, UpstreamRpcError, UpstreamTimeout
from bastion.core.models import Discovery, UpstreamSpec
from bastion.core.ports import AgentTaskHolders, CallHooks, ProgressCallback
from bastion.core.surrogates import NotUnicode, strict_loads
from bastion.upstream.discovery import name_items
from bastion.upstream.guard import AddressGuard
from bastion.upstream.outbound import ResponseTooLarge, fetch, open_stream

BearerFor = Callable[[str | None], Awaitable[str | None]]
MAX_CARD_BYTES = 1024 * 1024
MAX_ROUNDS = 5
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "description": "Your answer to the agent"}},
    "required": ["answer"],
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_FAILED = frozenset({"TASK_STATE_FAILED", "TASK_STATE_REJECTED", "TASK_STATE_CANCELED"})
_WAITING = frozenset({"TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"})
_HELD = (("task", "task_id"), ("context", "context_id"))
"""What a caller holds, each as (its kind, the argument and result field naming it)."""
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": "string", "description": "What to ask the agent"},
        "task_id": {"type": "string", "description": "Continue this task (one that asked for input)"},
        "context_id": {"type": "string", "description": "Continue this conversation"},
    },
}


def _texts(parts: Any) -> list[str]:
    out: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            out.append(part["text"])
        elif "data" in part:
            out.append(json.dumps(part["data"]))
        elif isinstance(part.get("url"), str):
            out.append(part["url"])
    return out


def skill_tools(card: dict[str, Any]) -> list[dict[str, Any]]:
    """One tool definition per skill of an agent card."""
    tools = []
    for skill in card.get("skills") or ():
        if not isinstance(skill, dict) or not isinstance(skill.get("id"), str):
            continue
        name = _UNSAFE.sub("_", skill["id"]).strip("_")[:64] or "skill"
        text = [str(skill.get(k)) for k in ("name", "description") if skill.get(k)]
        tools.append(
            {
                "name": name,
                "title": str(skill.get("name") or name)[:200],
                "description": "\n\n".join(text) or f"Skill {skill['id']} of agent {card.get('name')}",
                "inputSchema": INPUT_SCHEMA,
                "_meta": {"io.a2a/skill": skill["id"]},
                "annotations": {"openWorldHint": True},
            }
        )
    return tools


def task_result(result: Any) -> dict[str, Any]:
    """A SendMessage result (a task or a message) as a tool result."""
    if not isinstance(result, dict):
        raise UpstreamProtocolError("the agent's answer carried no result object")
    if isinstance(result.get("message"), dict):
        return {"content": [{"type": "text", "text": t} for t in _texts(result["message"].get("parts"))]}
    task = result.get("task")
    if not isinstance(task, dict):
        raise UpstreamProtocolError("the agent answered neither a task nor a message")
    raw_status = task.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    state = str(status.get("state", ""))
    said = _texts((status.get("message") or {}).get("parts"))
    ids = {"task_id": task.get("id"), "context_id": task.get("contextId"), "state": state}
    if state in _FAILED:
        return {"content": [{"type": "text", "text": "\n".join(said) or f"the task ended {state}"}], "isError": True}
    if state in _WAITING:
        question = "\n".join(said) or "the agent needs more input"
        hint = f"\n\n(Answer by calling this tool again with task_id {ids['task_id']!r}.)"
        return {"content": [{"type": "text", "text": question + hint}], "structuredContent": ids}
    texts = [t for artifact in task.get("artifacts") or () if isinstance(artifact, dict) for t in _texts(artifact.get("parts"))]
    return {"content": [{"type": "text", "text": t} for t in texts or said], "structuredContent": ids}


class A2aUpstream:
    """One A2A agent: its card (from the last discovery) and how to send it a message."""

    def __init__(
        self, spec: UpstreamSpec, http: httpx2.AsyncClient, guard: AddressGuard | None, bearer_for: BearerFor,
        *, timeout: float, max_response_bytes: int, holders: AgentTaskHolders, hold_for: float,
    ) -> None:
        self.spec = spec
        self._http = http
        self._guard = guard
        self._bearer_for = bearer_for
        self._timeout = timeout
        self._max_response = max_response_bytes
        self._endpoint: str | None = None
        self._streaming = False
        self._skills: dict[str, str] = {}
        self._holders = holders
        self._hold_for = hold_for

    async def discover(self) -> Discovery:
        what = f"upstream {self.spec.name!r}'s agent card"
        request = self._http.build_request("GET", self.spec.url or "", headers={"Accept": "application/json"})
        fetched = await fetch(self._http, self._guard, request, what=what, deadline=self._timeout, max_bytes=MAX_CARD_BYTES)
        try:
            card = strict_loads(fetched.body, what) if fetched.status == 200 else None  # its skills become stored tools
        except NotUnicode as exc:
            raise UpstreamProtocolError(str(exc)) from None
        except ValueError:
            card = None
        if not isinstance(card, dict):
            raise UpstreamProtocolError(f"{what} is not an agent card (HTTP {fetched.status})")
        interfaces = [i for i in card.get("supportedInterfaces") or () if isinstance(i, dict)]
        jsonrpc = [i for i in interfaces if str(i.get("protocolBinding", "")).upper() == "JSONRPC" and i.get("url")]
        if not jsonrpc:
            raise UpstreamProtocolError(f"{what} offers no JSON-RPC interface")
        endpoint = str(jsonrpc[0]["url"])
        # Before it is used: until an admin approves a new origin, calls keep going where they went.
        check_destinations(self.spec.name, [endpoint], self.spec.destinations, f"the agent card of upstream {self.spec.name!r}")
        self._endpoint = endpoint
        capabilities = card.get("capabilities")
        self._streaming = isinstance(capabilities, dict) and capabilities.get("streaming") is True
        tools = skill_tools(card)
        self._skills = {t["name"]: t["_meta"]["io.a2a/skill"] for t in tools}
        return Discovery(
            items=tuple(name_items(self.spec.name, "tool", "name", tools)),
            server_name=str(card.get("name") or "") or None,
            server_version=str(card.get("version") or "") or None,
            protocol_version=f"a2a-{jsonrpc[0].get('protocolVersion') or '1.0'}",
            destinations=(origin_of(endpoint),),
        )

    async def rediscover(self) -> Discovery:
        """Discover again; a card that is wrong is the agent's fault (502) whether it is new or not."""
        return await self.discover()

    async def request(
        self, method: str, params: dict[str, Any] | None, *, user: str | None, timeout: float, hooks: CallHooks | None = None,
        caller: str | None = None,
    ) -> dict[str, Any]:
        """Send the message for `caller` (`pipeline.context.holder_of`), continuing only a task or
        conversation that caller holds; a task that needs input is put to the caller as an
        elicitation when the caller can be asked (a 2025-11-25 session, or an async facade call),
        else returned."""
        if method != "tools/call":
            raise UpstreamRpcError(f"an A2A agent serves tools only, not {method}", -32601)
        if self._endpoint is None:
            await self.discover()
        name = str((params or {}).get("name"))
        skill = self._skills.get(name)
        if skill is None:
            raise UpstreamRpcError(f"agent {self.spec.name!r} has no skill {name!r} (any more)", -32602)
        arguments = (params or {}).get("arguments") or {}
        text = str(arguments.get("message", ""))
        ids = {k: arguments[k] for k in ("task_id", "context_id") if isinstance(arguments.get(k), str)}
        holder = caller or "anonymous"
        await self._check_held(ids, holder)
        ask = hooks.ask if hooks is not None else None
        progress = hooks.on_progress if hooks is not None and self._streaming else None
        for _ in range(MAX_ROUNDS):
            reply = await self._send(skill, text, ids, user, timeout, progress)
            result = task_result(reply)
            await self._hold(result, holder)
            state = (result.get("structuredContent") or {}).get("state")
            if ask is None or state not in _WAITING:
                return result
            question = result["content"][0]["text"].split("\n\n(Answer", 1)[0]
            answer = await ask("elicitation/create", {"message": question, "requestedSchema": ANSWER_SCHEMA})
            content = answer.get("content") if answer.get("action") == "accept" else None
            if not isinstance(content, dict) or not isinstance(content.get("answer"), str):
                return result  # declined or unanswerable: the caller may still continue it by task_id
            text = content["answer"]
            ids = {"task_id": result["structuredContent"]["task_id"], "context_id": result["structuredContent"]["context_id"]}
        raise UpstreamProtocolError(f"agent {self.spec.name!r} asked for input more than {MAX_ROUNDS} times")

    async def _check_held(self, ids: dict[str, str], holder: str) -> None:
        """Refuse a task or context the caller does not hold. A client may not pick a new context
        id either: an id nobody holds may still be another's at the agent (started before Bastion
        held it, or since lapsed), so only ids an answer gave this caller are sent."""
        for kind, field in _HELD:
            if field in ids and not await self._holders.holds(self.spec.name, kind, ids[field], holder):
                what = "task" if kind == "task" else "conversation"
                raise UnknownAgentTask(
                    f"{field} names no {what} you started with agent {self.spec.name!r} (or it was unused too long); "
                    f"leave it out to start a new one"
                )

    async def _hold(self, result: dict[str, Any], holder: str) -> None:
        """The answer's task and context are the caller's now (held longer if they were already).
        One another caller holds is not delivered: the agent put this caller's message there."""
        named = result.get("structuredContent") or {}
        for kind, field in _HELD:
            ident = named.get(field)
            if isinstance(ident, str) and ident and not await self._holders.claim(
                self.spec.name, kind, ident, holder, self._hold_for
            ):
                raise UpstreamProtocolError(f"agent {self.spec.name!r} answered in a {kind} another caller started")

    async def _send(
        self, skill: str, text: str, ids: dict[str, str], user: str | None, timeout: float, progress: ProgressCallback | None
    ) -> Any:
        assert self._endpoint is not None
        if unapproved([self._endpoint], self.spec.destinations):  # checked at discovery too: never sent, whatever changed
            raise UpstreamProtocolError(f"agent {self.spec.name!r} may not be sent calls at {origin_of(self._endpoint)}: not an approved origin")
        message: dict[str, Any] = {
            "messageId": str(uuid.uuid4()),
            "role": "ROLE_USER",
            "parts": [{"text": text}],
            "metadata": {"skillId": skill},
        }
        if "task_id" in ids:
            message["taskId"] = ids["task_id"]
        if "context_id" in ids:
            message["contextId"] = ids["context_id"]
        method = "SendStreamingMessage" if progress is not None else "SendMessage"
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}
        headers = {**self.spec.headers, "Content-Type": "application/json", "A2A-Version": "1.0"}
        bearer = await self._bearer_for(user)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        request = self._http.build_request("POST", self._endpoint, headers=headers, content=json.dumps(body).encode())
        what = f"agent {self.spec.name!r}"
        if progress is not None:
            try:
                with anyio.fail_after(timeout):
                    return await self._streamed(request, what, progress)
            except TimeoutError:
                raise UpstreamTimeout(f"{what} did not finish within {timeout:g} s") from None
        fetched = await fetch(
            self._http, self._guard, request, what=what, deadline=timeout, max_bytes=self._max_response, redirects="same-origin"
        )
        if fetched.status != 200:
            excerpt = fetched.body[:500].decode(errors="replace")
            raise UpstreamProtocolError(f"{what} answered HTTP {fetched.status}: {excerpt}")
        try:
            reply = strict_loads(fetched.body, what, "answered with")
        except NotUnicode as exc:
            raise UpstreamProtocolError(str(exc)) from None
        except ValueError:
            raise UpstreamProtocolError(f"{what} answered something that is not JSON") from None
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict):
            raise UpstreamRpcError(str(error.get("message", "agent error")), int(error.get("code", -32603)), error.get("data"))
        return reply.get("result") if isinstance(reply, dict) else None

    async def _streamed(self, request: httpx2.Request, what: str, progress: ProgressCallback) -> Any:
        """Follow a SendStreamingMessage stream: status updates become progress, and the task is
        rebuilt from its events (status and artifacts) into the result a SendMessage would give."""
        async with open_stream(self._http, self._guard, request, what=what) as response:
            if response.status_code != 200:
                raise UpstreamProtocolError(f"{what} answered HTTP {response.status_code}")
            task: dict[str, Any] = {}
            size, step = 0, 0
            async for line in response.aiter_lines():
                size += len(line)
                if size > self._max_response:
                    raise ResponseTooLarge(f"{what} streamed more than {self._max_response} bytes")
                if not line.startswith("data:"):
                    continue
                try:
                    event = strict_loads(line[5:], what, "answered with")
                except NotUnicode as exc:
                    raise UpstreamProtocolError(str(exc)) from None
                except ValueError:
                    raise UpstreamProtocolError(f"{what} streamed an event that is not JSON") from None
                if isinstance(event.get("error"), dict):
                    error = event["error"]
                    raise UpstreamRpcError(str(error.get("message", "agent error")), int(error.get("code", -32603)))
                result = event.get("result") if isinstance(event, dict) else None
                if not isinstance(result, dict):
                    continue
                if isinstance(result.get("message"), dict):
                    return result
                if isinstance(result.get("task"), dict):
                    task = dict(result["task"])
                elif isinstance(result.get("statusUpdate"), dict):
                    status = result["statusUpdate"].get("status") or {}
                    task["status"] = status
                    said = _texts((status.get("message") or {}).get("parts")) if isinstance(status, dict) else []
                    step += 1
                    await progress(step, None, "\n".join(said) or str(status.get("state", "")))
                elif isinstance(result.get("artifactUpdate"), dict):
                    artifact = result["artifactUpdate"].get("artifact")
                    if isinstance(artifact, dict):
                        task.setdefault("artifacts", []).append(artifact)
            if not task:
                raise UpstreamProtocolError(f"{what} ended its stream without a task")
            return {"task": task}
