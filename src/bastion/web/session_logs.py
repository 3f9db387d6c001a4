"""Session ids out of logs: whoever knows a live session id can try to use it, so the SDK's transport
modules (which log ids as they open, refuse or end sessions) have them replaced before any handler
sees the record. Bastion's own log lines never name a session."""

from __future__ import annotations

import logging
import re

_SESSION_ID = re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.IGNORECASE)
SDK_SESSION_LOGGERS = ("mcp.server.sse", "mcp.server.streamable_http", "mcp.server.streamable_http_manager")


class RedactSessionIds(logging.Filter):
    """Replaces anything shaped like a session id (a UUID, with or without dashes) in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SESSION_ID.sub("<session>", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_session_ids() -> None:
    """Install the filter on the SDK's transport loggers (once; safe to call again)."""
    for name in SDK_SESSION_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSessionIds) for f in logger.filters):
            logger.addFilter(RedactSessionIds())
