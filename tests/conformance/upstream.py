"""The MCP upstream the conformance suite (npm @modelcontextprotocol/conformance) runs against.

    python tests/conformance/upstream.py [--port 0]

Serves streamable HTTP at /mcp on 127.0.0.1 for both protocol eras at once
(2025-11-25 sessions and 2026-07-28 stateless requests, routed by the SDK on
the MCP-Protocol-Version header) and prints exactly one line, ``READY <port>``,
to stdout once it is listening; ``--port 0`` picks a free port. Diagnostics go
to stderr.

It exposes every fixed name the suite's server scenarios call (tools,
resources, prompts, completion, logging, list_changed), with the behaviour the
scenario sources check; the comments name the scenario each one serves.
Tools that the suite expects to behave differently per era look at the
negotiated protocol version (`_modern`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import itertools
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp.server import CacheHint, MCPServer, NotificationOptions, ServerRequestContext
from mcp.server.mcpserver import Context, Elicit, Resolve, Sample
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.types import Audio, Image
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    CallToolResult,
    ClientCapabilities,
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequest,
    InputRequiredResult,
    JSONRPCMessage,
    ListRootsRequest,
    ListRootsResult,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: `tests` importable
from tests.upstreams.serving import serve_ready

# The legacy scenarios exercise logging, sampling and roots, which 2026-07-28 deprecates.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

logger = logging.getLogger("conformance-upstream")

# A 1x1 red PNG and a 44-byte silent WAV (one sample), for the image/audio scenarios.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV_SILENT = base64.b64decode("UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA==")

ERROR_TEXT = "This tool intentionally returns an error for testing"
COMPLETION_VALUES = ["paris", "park", "party", "test", "testValue1", "testValue2"]

# json-schema-2020-12: advertised verbatim ($schema, $defs/$anchor, allOf/anyOf, if/then/else,
# additionalProperties false must all survive tools/list).
JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

# elicitation-sep1330-enums: all five enum shapes, verbatim (a pydantic model cannot render
# the deprecated `enumNames` form, so this one goes to the client as a raw schema).
SEP1330_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
    "required": [],
}


def _modern(ctx: Context) -> bool:
    """True on the 2026-07-28 wire (stateless, multi-round-trip), false on a handshake session."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _elicit(message: str, properties: dict[str, Any], required: list[str]) -> ElicitRequest:
    schema = {"type": "object", "properties": properties, "required": required}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _sample(text: str, max_tokens: int) -> CreateMessageRequest:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=text))
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens))


def _accepted(ctx: Context, key: str) -> dict[str, Any] | None:
    """The accepted form content the client sent for input request `key`, else None."""
    response = (ctx.input_responses or {}).get(key)
    if isinstance(response, ElicitResult) and response.action == "accept":
        return dict(response.content or {})
    return None


def _answered(ctx: Context, key: str, kind: type[BaseModel]) -> bool:
    return isinstance((ctx.input_responses or {}).get(key), kind)


def _text(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


def _sampled_text(result: CreateMessageResult) -> str:
    content = result.content
    return content.text if isinstance(content, TextContent) else f"<{content.type}>"


class UserInfo(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


class Sep1034Defaults(BaseModel):
    name: str = "John Doe"
    age: int = 30
    score: float = 95.5
    status: Literal["active", "inactive", "pending"] = "active"
    verified: bool = True


class StreamingAnswer(BaseModel):
    answer: str


class PromptContext(BaseModel):
    context: str


def ask_user(message: str) -> Elicit[UserInfo]:
    """tools-call-elicitation: elicitation/create with the tool's `message`."""
    return Elicit(message, UserInfo)


def ask_defaults() -> Elicit[Sep1034Defaults]:
    """elicitation-sep1034-defaults: every primitive type with a default."""
    return Elicit("Please review the defaults (SEP-1034)", Sep1034Defaults)


def ask_llm(prompt: str) -> Sample:
    """tools-call-sampling: sampling/createMessage with the tool's `prompt`, maxTokens 100."""
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return Sample([message], max_tokens=100)


def ask_llm_fixed() -> Sample:
    """server-stateless (test_missing_capability): needs the client's sampling capability."""
    message = SamplingMessage(role="user", content=TextContent(type="text", text="Say hello"))
    return Sample([message], max_tokens=20)


def ask_streaming() -> Elicit[StreamingAnswer]:
    return Elicit("Streaming elicitation: what is your answer?", StreamingAnswer)


class MemoryEventStore(EventStore):
    """In-process event store: gives POST SSE streams priming events and Last-Event-ID replay (SEP-1699)."""

    def __init__(self) -> None:
        self._events: list[tuple[StreamId, EventId, JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = f"{stream_id}:{next(self._ids)}"
        self._events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        index = next((i for i, (_, eid, _) in enumerate(self._events) if eid == last_event_id), None)
        if index is None:
            return None
        stream_id = self._events[index][0]
        for sid, eid, message in self._events[index + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, eid))
        return stream_id


@dataclass
class Dynamic:
    """What test_trigger_*_change toggles."""

    tool: bool = False
    prompt: bool = False


def build_server() -> MCPServer:
    json_schema_tool = Tool.from_function(
        lambda: "JSON Schema 2020-12 tool called",
        name="json_schema_2020_12_tool",
        description="Tool with JSON Schema 2020-12 features",
    ).model_copy(update={"parameters": JSON_SCHEMA_2020_12})

    mcp = MCPServer(
        name="bastion-conformance-upstream",
        version="1.0.0",
        instructions="Bastion's conformance test upstream.",
        tools=[json_schema_tool],  # registered ready-made so its inputSchema is advertised verbatim
        cache_hints={
            method: CacheHint(ttl_ms=0, scope="private")
            for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")
        },
    )
    lowlevel = mcp._lowlevel_server
    # Handshake-era `initialize` advertises listChanged (MCPServer leaves them false); on
    # 2026-07-28 server/discover derives them from subscriptions/listen being served.
    lowlevel.create_initialization_options = functools.partial(  # type: ignore[method-assign]
        lowlevel.create_initialization_options,
        NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
    )
    dynamic = Dynamic()
    subscribed: set[str] = set()

    # logging-set-level (2025-11-25): accepted, advertises the logging capability.
    async def set_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        logger.info("logging/setLevel %s", params.level)
        return EmptyResult()

    # resources-subscribe / resources-unsubscribe (2025-11-25 only; 2026-07-28 uses subscriptions/listen).
    async def subscribe(ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        subscribed.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        subscribed.discard(str(params.uri))
        return EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)

    # ---- tools, both eras. test_simple_text stays first: http-header-validation calls tools[0] with {}.

    @mcp.tool()
    def test_simple_text() -> CallToolResult:
        """Returns a simple text response (tools-call-simple-text)."""
        return _text("This is a simple text response for testing.")

    @mcp.tool()
    def test_image_content() -> Image:
        """Returns a 1x1 PNG image (tools-call-image)."""
        return Image(data=PNG_1X1, format="png")

    @mcp.tool()
    def test_audio_content() -> Audio:
        """Returns a short WAV clip (tools-call-audio)."""
        return Audio(data=WAV_SILENT, format="wav")

    @mcp.tool()
    def test_embedded_resource() -> CallToolResult:
        """Returns an embedded text resource (tools-call-embedded-resource)."""
        resource = TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
        )
        return CallToolResult(content=[EmbeddedResource(type="resource", resource=resource)])

    @mcp.tool()
    def test_multiple_content_types() -> CallToolResult:
        """Returns text, image and resource content together (tools-call-mixed-content)."""
        resource = TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
        )
        return CallToolResult(
            content=[
                TextContent(type="text", text="Multiple content types test:"),
                Image(data=PNG_1X1, format="png").to_image_content(),
                EmbeddedResource(type="resource", resource=resource),
            ]
        )

    @mcp.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three info log notifications ~50 ms apart (tools-call-with-logging)."""
        await ctx.info("Tool execution started", logger_name="conformance")
        await anyio.sleep(0.05)
        await ctx.info("Tool processing data", logger_name="conformance")
        await anyio.sleep(0.05)
        await ctx.info("Tool execution completed", logger_name="conformance")
        return "Tool with logging executed successfully"

    @mcp.tool()
    async def test_logging_tool(ctx: Context) -> str:
        """Logs at info level; on 2026-07-28 only delivered when the request's _meta sets a logLevel."""
        await ctx.info("test_logging_tool ran", logger_name="conformance")
        return "logged"

    @mcp.tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50, 100 of 100, ~50 ms apart (tools-call-with-progress)."""
        await ctx.report_progress(0, 100)
        await anyio.sleep(0.05)
        await ctx.report_progress(50, 100)
        await anyio.sleep(0.05)
        await ctx.report_progress(100, 100)
        return "Tool with progress executed successfully"

    @mcp.tool()
    def test_error_handling() -> CallToolResult:
        """Always fails: a tool error result whose text is exactly ERROR_TEXT (tools-call-error).

        Returned rather than raised: a raised ToolError reaches the client as
        "Error executing tool test_error_handling: ...", not the text the scenario specifies.
        """
        return CallToolResult(content=[TextContent(type="text", text=ERROR_TEXT)], is_error=True)

    @mcp.tool()
    def test_sampling(prompt: str, reply: Annotated[CreateMessageResult, Resolve(ask_llm)]) -> str:
        """Asks the client's LLM via sampling/createMessage (tools-call-sampling)."""
        return f"LLM response: {_sampled_text(reply)}"

    @mcp.tool()
    def test_elicitation(message: str, info: Annotated[UserInfo, Resolve(ask_user)]) -> str:
        """Asks the user for username and email via elicitation/create (tools-call-elicitation)."""
        return f"User response: action=accept, content={info.model_dump_json()}"

    @mcp.tool()
    def test_elicitation_sep1034_defaults(values: Annotated[Sep1034Defaults, Resolve(ask_defaults)]) -> str:
        """Elicits a form whose fields all carry defaults (elicitation-sep1034-defaults)."""
        return f"Elicitation completed: action=accept, content={values.model_dump_json()}"

    @mcp.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str | InputRequiredResult:
        """Elicits a form with all five enum shapes (elicitation-sep1330-enums).

        On a 2025-11-25 session the form goes out as a live elicitation/create; on the
        2026-07-28 wire (no server-to-client requests) as an input_required round, which a
        gateway in front of a 2025-11-25 client turns back into the live request.
        """
        message = "Please pick from the enums (SEP-1330)"
        if _modern(ctx):
            response = (ctx.input_responses or {}).get("enums")
            if not isinstance(response, ElicitResult):
                form = ElicitRequestFormParams(message=message, requested_schema=SEP1330_SCHEMA)
                return InputRequiredResult(input_requests={"enums": ElicitRequest(params=form)})
            result = response
        else:
            result = await ctx.session.elicit_form(message, SEP1330_SCHEMA, related_request_id=ctx.request_id)
        return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"

    @mcp.tool()
    async def test_reconnection(ctx: Context) -> str:
        """Closes its SSE stream mid-call, then answers on the resumed stream (server-sse-polling)."""
        await anyio.sleep(0.1)
        await ctx.close_sse_stream()
        await anyio.sleep(0.5)
        return "Reconnection test completed"

    # ---- 2026-07-28 diagnostic tools (server-stateless, http-*-validation).

    @mcp.tool()
    def test_x_mcp_header(
        region: Annotated[
            str, Field(description="Also sent as Mcp-Param-Region", json_schema_extra={"x-mcp-header": "Region"})
        ],
    ) -> str:
        """Echoes `region`, mirrored in the Mcp-Param-Region header (http-custom-header-server-validation)."""
        return f"region={region}"

    @mcp.tool()
    def test_missing_capability(reply: Annotated[CreateMessageResult, Resolve(ask_llm_fixed)]) -> str:
        """Needs the client's sampling capability; without it the SDK answers -32021 (server-stateless)."""
        return f"LLM response: {_sampled_text(reply)}"

    @mcp.tool()
    def test_streaming_elicitation(answer: Annotated[StreamingAnswer, Resolve(ask_streaming)]) -> str:
        """Elicits one answer: an input_required result on 2026-07-28, never a standalone request (server-stateless)."""
        return f"Streaming elicitation answered: {answer.answer}"

    @mcp.tool()
    async def test_trigger_tool_change(ctx: Context) -> str:
        """Adds or removes test_dynamic_tool and announces tools/list_changed (server-stateless)."""
        if dynamic.tool:
            mcp.remove_tool("test_dynamic_tool")
        else:
            mcp.add_tool(
                lambda: "dynamic tool called", name="test_dynamic_tool", description="Added by a trigger."
            )
        dynamic.tool = not dynamic.tool
        await ctx.notify_tools_changed()
        if not _modern(ctx):
            await ctx.session.send_tool_list_changed()
        return f"test_dynamic_tool {'added' if dynamic.tool else 'removed'}"

    @mcp.tool()
    async def test_trigger_prompt_change(ctx: Context) -> str:
        """Adds or removes test_dynamic_prompt and announces prompts/list_changed (server-stateless)."""
        if dynamic.prompt:
            mcp.remove_prompt("test_dynamic_prompt")
        else:
            mcp.prompt(name="test_dynamic_prompt", description="Added by test_trigger_prompt_change.")(
                lambda: "A prompt added at runtime."
            )
        dynamic.prompt = not dynamic.prompt
        await ctx.notify_prompts_changed()
        if not _modern(ctx):
            await ctx.session.send_prompt_list_changed()
        return f"test_dynamic_prompt {'added' if dynamic.prompt else 'removed'}"

    # ---- 2026-07-28 multi-round-trip tools (input-required-result-*). The keys are the ones the
    # scenarios name; the SDK seals requestState (tampered echoes are rejected before the handler).

    @mcp.tool()
    def test_input_required_result_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Round 1 asks "user_name"; a retry carrying it completes (basic-elicitation and friends)."""
        answer = _accepted(ctx, "user_name")
        if answer is None:  # first round, or a retry without (a valid) user_name: ask again
            return InputRequiredResult(
                input_requests={"user_name": _elicit("What is your name?", {"name": {"type": "string"}}, ["name"])}
            )
        return _text(f"Hello, {answer.get('name')}!")

    @mcp.tool()
    def test_input_required_result_sampling(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Round 1 asks "capital_question" by sampling; the retry returns the sampled text."""
        reply = (ctx.input_responses or {}).get("capital_question")
        if not isinstance(reply, CreateMessageResult):
            return InputRequiredResult(
                input_requests={"capital_question": _sample("What is the capital of France?", 100)}
            )
        return _text(f"Sampling response: {_sampled_text(reply)}")

    @mcp.tool()
    def test_input_required_result_list_roots(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Round 1 asks "client_roots" (roots/list); the retry names the roots it got."""
        roots = (ctx.input_responses or {}).get("client_roots")
        if not isinstance(roots, ListRootsResult):
            return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})
        return _text("Roots: " + ", ".join(str(root.uri) for root in roots.roots))

    @mcp.tool()
    def test_input_required_result_request_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Round 1 sends "confirm" plus requestState; the retry must echo it (answer contains state-ok)."""
        answer = _accepted(ctx, "confirm")
        if answer is None or ctx.request_state != "request-state:round-1":
            return InputRequiredResult(
                input_requests={"confirm": _elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])},
                request_state="request-state:round-1",
            )
        return _text(f"state-ok: confirmed={answer.get('ok')}")

    @mcp.tool()
    def test_input_required_result_multiple_inputs(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Asks elicitation, sampling and roots/list in one round; completes once all three are answered."""
        done = (
            _accepted(ctx, "user_name") is not None
            and _answered(ctx, "greeting", CreateMessageResult)
            and _answered(ctx, "client_roots", ListRootsResult)
        )
        if not done or ctx.request_state != "multiple-inputs":
            return InputRequiredResult(
                input_requests={
                    "user_name": _elicit("What is your name?", {"name": {"type": "string"}}, ["name"]),
                    "greeting": _sample("Generate a greeting", 50),
                    "client_roots": ListRootsRequest(),
                },
                request_state="multiple-inputs",
            )
        return _text("All inputs received")

    @mcp.tool()
    def test_input_required_result_multi_round(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Three rounds: step1 (name), step2 (color) with a new requestState, then complete."""
        if ctx.request_state == "multi-round:2" and (color := _accepted(ctx, "step2")) is not None:
            return _text(f"Multi-round complete: color={color.get('color')}")
        if ctx.request_state == "multi-round:1" and _accepted(ctx, "step1") is not None:
            return InputRequiredResult(
                input_requests={
                    "step2": _elicit("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
                },
                request_state="multi-round:2",
            )
        return InputRequiredResult(
            input_requests={"step1": _elicit("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])},
            request_state="multi-round:1",
        )

    @mcp.tool()
    def test_input_required_result_tampered_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Round 1 carries requestState; an untampered echo completes (the SDK rejects tampered ones)."""
        if ctx.request_state == "tamper-check" and _accepted(ctx, "confirm") is not None:
            return _text("state verified")
        return InputRequiredResult(
            input_requests={"confirm": _elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])},
            request_state="tamper-check",
        )

    @mcp.tool()
    def test_input_required_result_capabilities(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Asks only for what the client declared in _meta clientCapabilities (capability-check)."""
        declared = ctx.client_capabilities or ClientCapabilities()
        wanted: dict[str, InputRequest] = {}
        if declared.sampling is not None:
            wanted["greeting"] = _sample("Generate a greeting", 50)
        if declared.elicitation is not None:
            wanted["user_name"] = _elicit("What is your name?", {"name": {"type": "string"}}, ["name"])
        if declared.roots is not None:
            wanted["client_roots"] = ListRootsRequest()
        answered = set(ctx.input_responses or {})
        if wanted and not set(wanted) <= answered:
            return InputRequiredResult(input_requests=wanted)
        return _text("Requested only declared capabilities: " + (", ".join(sorted(wanted)) or "none"))

    # ---- resources

    @mcp.resource(
        "test://static-text", name="static-text", description="A static text resource", mime_type="text/plain"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", name="static-binary", description="A static PNG image", mime_type="image/png")
    def static_binary() -> bytes:
        return PNG_1X1

    @mcp.resource(
        "test://template/{id}/data",
        name="template-data",
        description="A resource template with an id parameter",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))

    @mcp.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource to subscribe to",
        mime_type="text/plain",
    )
    def watched_resource() -> str:
        return "Watched resource content"

    reads = itertools.count(1)

    @mcp.resource(
        "test://dynamic-resource", name="dynamic-resource", description="Changes on every read", mime_type="text/plain"
    )
    def dynamic_resource() -> str:
        return f"Dynamic resource content, read #{next(reads)}"

    # ---- prompts

    @mcp.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[UserMessage]:
        return [UserMessage("This is a simple prompt for testing.")]

    @mcp.prompt(description="A prompt with two required arguments")
    def test_prompt_with_arguments(
        arg1: Annotated[str, Field(description="First test argument")],
        arg2: Annotated[str, Field(description="Second test argument")],
    ) -> list[UserMessage]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @mcp.prompt(description="A prompt that embeds a resource")
    def test_prompt_with_embedded_resource(
        resourceUri: Annotated[str, Field(description="URI of the resource to embed")],
    ) -> list[UserMessage]:
        resource = TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(EmbeddedResource(type="resource", resource=resource)),
            UserMessage("Please process the embedded resource above."),
        ]

    @mcp.prompt(description="A prompt with image content")
    def test_prompt_with_image() -> list[UserMessage]:
        image: ImageContent = Image(data=PNG_1X1, format="png").to_image_content()
        return [UserMessage(image), UserMessage("Please analyze the image above.")]

    @mcp.prompt(description="A prompt that asks the user for context first (input-required-result-non-tool-request)")
    async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
        if _modern(ctx):
            answer = _accepted(ctx, "user_context")
            if answer is None:
                return InputRequiredResult(
                    input_requests={
                        "user_context": _elicit(
                            "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                        )
                    }
                )
            context = str(answer.get("context"))
        else:
            result = await ctx.elicit("What context should the prompt use?", PromptContext)
            context = result.data.context if result.action == "accept" else "(none)"
        return [UserMessage(f"Prompt with user context: {context}")]

    # ---- completion

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if isinstance(ref, PromptReference) and ref.name == "test_prompt_with_arguments":
            values = [v for v in COMPLETION_VALUES if v.startswith(argument.value)]
            return Completion(values=values, total=len(values), has_more=False)
        if isinstance(ref, ResourceTemplateReference) and argument.name == "id":
            values = [v for v in ("1", "123", "42") if v.startswith(argument.value)]
            return Completion(values=values, total=len(values), has_more=False)
        return Completion(values=[], total=0, has_more=False)

    return mcp


async def serve_http(mcp: MCPServer, port: int) -> None:
    """Run uvicorn in-process and print ``READY <port>`` once it is listening."""
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp", event_store=MemoryEventStore(), retry_interval=100, host="127.0.0.1"
    )
    # Bind first, so a busy port fails here with a plain message and exit code 1.
    # h11, not httptools: httptools hands the app header values with their trailing whitespace
    # (OWS) intact, and the SDK compares Mcp-Name/Mcp-Method verbatim, so a client that pads a
    # header value (RFC 9110 5.5 allows it) would be refused (http-header-validation).
    await serve_ready(app, port, name="conformance upstream", http="h11")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Bastion's MCP conformance test upstream")
    parser.add_argument("--port", type=int, default=0, help="HTTP port; 0 picks a free one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_http(build_server(), args.port))


if __name__ == "__main__":
    main()
