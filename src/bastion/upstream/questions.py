"""What an upstream asks its client over an SDK-backed session (sampling, elicitation, roots/list),
put to the caller it can be attributed to.

An `UpstreamConnection` declares the capabilities its caller declared (a shared one declares none),
and so is asked only what a caller may answer. A question goes to the call it was asked during
(which call that is, the connection says: `attributed`); a `roots/list` asked outside any call, after
the caller's own notice that its roots changed, goes to that caller. Anything else is answered with
an error: the upstream waits for an answer either way. (A caller's own session on Streamable HTTP
answers its questions itself, in caller_http.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp import Client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bastion.core.ports import AskCallback, CallHooks


class UpstreamQuestions:
    """The questions one upstream session asks, and whom they are put to."""

    def __init__(self, *, attributed: Callable[[], CallHooks | None], shared_and_busy: Callable[[], bool]) -> None:
        self._attributed = attributed
        """The call something that names no call belongs to, if it can be told."""
        self._shared_and_busy = shared_and_busy
        """Whether the session is shared and carries calls (why a question found no call to go to)."""
        self._roots_asker: AskCallback | None = None
        """On a caller's own session, once the caller said its roots changed: how to ask it for them
        outside any call (see `roots_changed`)."""

    def callbacks(self, caps: dict[str, Any]) -> dict[str, Any]:
        """The SDK client's callbacks for the capabilities `caps` declares (the SDK declares a
        capability for each callback it is given)."""
        callbacks: dict[str, Any] = {}
        if "sampling" in caps:
            callbacks["sampling_callback"] = self._on_sampling
        if "elicitation" in caps:
            callbacks["elicitation_callback"] = self._on_elicitation
        if "roots" in caps:
            callbacks["list_roots_callback"] = self._on_list_roots
        return callbacks

    async def roots_changed(self, client: Client, ask: AskCallback) -> None:
        """The caller whose own session this is changed its roots: tell the upstream, as its client
        would directly; a `roots/list` it then asks outside any call is put to the caller by `ask`.
        Raises what sending the notice raises."""
        self._roots_asker = ask
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # a 2026-07-28 session has no roots notice (roots travel with each request)
        await client.session.send_notification(types.RootsListChangedNotification())

    async def _on_sampling(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        return await self._ask("sampling/createMessage", params, types.CreateMessageResult)

    async def _on_elicitation(self, context: Any, params: types.ElicitRequestParams) -> Any:
        return await self._ask("elicitation/create", params, types.ElicitResult)

    async def _on_list_roots(self, context: Any) -> Any:
        return await self._ask("roots/list", None, types.ListRootsResult)

    async def _ask(self, method: str, params: Any, result: type[Any]) -> Any:
        hooks = self._attributed()
        ask = hooks.ask if hooks is not None else None
        if ask is None and method == "roots/list":
            ask = self._roots_asker  # asked again after the caller's notice: only roots, only its own caller
        if ask is None:
            why = "this upstream session is shared by several calls" if self._shared_and_busy() else (
                "no call of this caller is waiting for input"
            )
            return types.ErrorData(code=-32603, message=f"Bastion cannot route this {method}: {why}")
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True) if params is not None else {}
        try:
            answer = await ask(method, wire)
        except Exception as exc:  # noqa: BLE001 - the upstream waits for an answer: it gets an error
            return types.ErrorData(code=-32603, message=f"the caller could not be asked ({type(exc).__name__})")
        if set(answer) <= {"code", "message", "data"} and "code" in answer:
            return types.ErrorData.model_validate(answer)
        return result.model_validate(answer)
