"""A stdio MCP server written with the Python MCP SDK, for the client's tests (Warden starts it)."""

from mcp.server import MCPServer

server = MCPServer("lab", version="1.0.0")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two numbers."""
    return str(a + b)


@server.tool()
def shutdown() -> str:
    """Shut the lab down (no agent's manifest names it)."""
    return "shut down"


if __name__ == "__main__":
    server.run("stdio")
