"""The demo's knowledge-base MCP server, written with the Python MCP SDK (Warden starts it over stdio)."""
from mcp.server import MCPServer

server = MCPServer("kb", version="1.0.0")
ARTICLES = {"printer": "Turn it off and on again; if it is on fire, call facilities first."}


@server.tool()
def search(query: str) -> str:
    """Search the knowledge base."""
    return next((text for key, text in ARTICLES.items() if key in query.lower()), "no article found")


@server.tool()
def purge() -> str:
    """Delete every article (no agent's manifest names this tool)."""
    ARTICLES.clear()
    return "purged"


if __name__ == "__main__":
    server.run("stdio")
