"""Send a request on an SDK ClientSession and get the raw result dict back.

The gateway forwards results; it must not parse them into models and back on every call
(that costs more CPU than everything else on the hot path together). This mirrors
`ClientSession.send_request` of the pinned SDK (mcp==2.3.0) without the result validation.
"""

from __future__ import annotations

from typing import Any, cast

from mcp.client.session import ClientSession
from mcp.shared.dispatcher import CallOptions, ProgressFnT

from bastion.core.ports import ProgressCallback

_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


async def raw_request(
    session: ClientSession,
    method: str,
    params: dict[str, Any] | None,
    *,
    timeout: float | None,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Send `method` with `params`; return the result dict. Raises the SDK's MCPError on an error reply."""
    data: dict[str, Any] = {"method": method}
    caller_caps: object = None
    if params is not None:
        meta = params.get("_meta")
        caller_caps = meta.get(_CAPABILITIES) if isinstance(meta, dict) else None
        # The SDK stamps `_meta` in place: the caller's dict is not ours to change.
        data["params"] = {**params, "_meta": dict(meta)} if isinstance(meta, dict) else params
    opts: CallOptions = {}
    session._stamp(data, opts)  # noqa: SLF001 - protocol-version _meta, Mcp-Method/Mcp-Name headers
    if isinstance(caller_caps, dict):
        # On 2026-07-28 a shared session speaks for the caller: its capabilities, not the session's.
        data["params"]["_meta"][_CAPABILITIES] = caller_caps
    if timeout is not None:
        opts["timeout"] = timeout
    if on_progress is not None:
        opts["on_progress"] = cast(ProgressFnT, on_progress)
    result = await session._dispatcher.send_raw_request(method, data.get("params"), opts)  # noqa: SLF001
    return dict(result)
