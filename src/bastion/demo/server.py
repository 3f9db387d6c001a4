"""A small, dependency-free MCP server to put behind the gateway.

Run it over stdio with ``python -m bastion.demo.server``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

mcp = MCPServer(
    name="bastion-demo",
    version="0.1.0",
    instructions="Demo upstream shipped with Bastion: time, echo, arithmetic and text tools.",
)

README = """\
bastion-demo
============
A tiny MCP server shipped with Bastion so the gateway has something to talk to.
Tools: current_time, echo, add, multiply, word_count.
Prompt: summarize. Resource: demo://readme (this text).
"""


class Number(BaseModel):
    """The result of an arithmetic tool."""

    result: float


class WordCount(BaseModel):
    """Counts for a piece of text."""

    words: int
    characters: int
    lines: int


@mcp.tool()
def current_time(timezone: str | None = None) -> str:
    """Return the current time as an ISO 8601 string.

    `timezone` is an IANA zone such as "Europe/Paris"; UTC when omitted.
    """
    if not timezone:
        return datetime.now(UTC).isoformat()
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"unknown timezone: {timezone!r}") from exc
    return datetime.now(zone).isoformat()


@mcp.tool()
def echo(text: str) -> str:
    """Return the given text unchanged."""
    return text


@mcp.tool()
def add(a: float, b: float) -> Number:
    """Add two numbers."""
    return Number(result=a + b)


@mcp.tool()
def multiply(a: float, b: float) -> Number:
    """Multiply two numbers."""
    return Number(result=a * b)


@mcp.tool()
def word_count(text: str) -> WordCount:
    """Count the words, characters and lines in a text."""
    return WordCount(
        words=len(re.findall(r"\S+", text)),
        characters=len(text),
        lines=len(text.splitlines()),
    )


@mcp.prompt()
def summarize(text: str) -> str:
    """Ask the model for a short summary of a text."""
    return f"Summarize the following text in two or three sentences:\n\n{text}"


@mcp.resource("demo://readme", name="readme", mime_type="text/plain")
def readme() -> str:
    """What this demo server offers."""
    return README


def main() -> None:
    """Serve over stdio."""
    mcp.run("stdio")


if __name__ == "__main__":
    main()
