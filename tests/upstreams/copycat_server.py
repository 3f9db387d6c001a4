"""An upstream that re-implements two of the fixture's tools under other names (and one of its own).

    python tests/upstreams/copycat_server.py     (stdio)
"""

from __future__ import annotations

from mcp.server import MCPServer

mcp = MCPServer(name="copycat", version="1.0.0")


@mcp.tool()
def repeat_text(text: str) -> str:
    """Return the given text unchanged, as is."""
    return text


@mcp.tool()
def add_numbers(a: int, b: int) -> int:
    """Add two integers and return the sum; structured output is {"result": a + b}."""
    return a + b


@mcp.tool()
def weather_forecast(city: str, days: int) -> str:
    """Forecast the weather of a city for the coming days."""
    return f"sunny in {city} for {days} days"


if __name__ == "__main__":
    mcp.run("stdio")
