"""What an upstream may ask a 2025-11-25 caller outside any call (web/caller_roots.py): after the
caller's `notifications/roots/list_changed`, its own upstream session may ask `roots/list` again,
as directly; nothing else (sampling, elicitation stay refused outside a call), and a caller that
cannot be asked (no stream open here, session gone, stream closed under the question) is answered
for with a JSON-RPC error at once, never waited on.
"""

from __future__ import annotations

import gc
from typing import Any, cast

import anyio
import pytest
from mcp.server.connection import Connection

from bastion.web.caller_roots import ask_outside_calls

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]


class Caller:
    """A client session's connection as far as the question needs it: a stream, and its answers."""

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.has_standalone_channel = True
        self.asked: list[tuple[str, Any]] = []
        self._answer = answer

    async def send_raw_request(self, method: str, params: Any, opts: Any = None) -> dict[str, Any]:
        self.asked.append((method, params))
        if isinstance(self._answer, Exception):
            raise self._answer
        return self._answer


ROOTS = {"roots": [{"uri": "file:///home/alice"}]}


async def test_roots_asked_outside_a_call_reach_the_caller_and_its_answer_comes_back() -> None:
    caller = Caller(ROOTS)
    ask = ask_outside_calls(cast(Connection, caller), lambda _c: True)
    assert await ask("roots/list", {}) == ROOTS
    assert caller.asked == [("roots/list", {})]


@pytest.mark.parametrize("method", ["sampling/createMessage", "elicitation/create", "ping"])
async def test_nothing_but_roots_may_be_asked_outside_a_call(method: str) -> None:
    caller = Caller(ROOTS)
    answer = await ask_outside_calls(cast(Connection, caller), lambda _c: True)(method, {})
    assert answer["code"] == -32603 and "no call of this caller is waiting" in answer["message"]
    assert caller.asked == []


async def test_a_caller_with_no_stream_open_is_not_asked_and_the_upstream_gets_an_error() -> None:
    caller = Caller(ROOTS)
    answer = await ask_outside_calls(cast(Connection, caller), lambda _c: False)("roots/list", {})
    assert answer["code"] == -32603 and "no stream open" in answer["message"]
    caller.has_standalone_channel, open_here = False, True
    answer = await ask_outside_calls(cast(Connection, caller), lambda _c: open_here)("roots/list", {})
    assert answer["code"] == -32603 and caller.asked == []


async def test_a_caller_whose_session_is_gone_is_answered_for_with_an_error() -> None:
    caller = Caller(ROOTS)
    ask = ask_outside_calls(cast(Connection, caller), lambda _c: True)
    del caller
    gc.collect()
    answer = await ask("roots/list", {})
    assert answer["code"] == -32603 and "session has ended" in answer["message"]
    closed = Caller(anyio.ClosedResourceError())
    answer = await ask_outside_calls(cast(Connection, closed), lambda _c: True)("roots/list", {})
    assert answer["code"] == -32603 and "session has ended" in answer["message"]
