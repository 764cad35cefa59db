"""The official MCP SDK through Warden: a client whose every request carries the agent's token and a fresh proof."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from .auth import WardenAuth


def http_client(auth: WardenAuth, **kwargs: Any) -> Any:
    """An `httpx2.AsyncClient` for the MCP SDK (its streamable-HTTP transport), authenticated by `auth`."""
    import httpx2
    from mcp.shared._httpx_utils import create_mcp_http_client

    return create_mcp_http_client(auth=auth.httpx(httpx2), **kwargs)


@contextlib.asynccontextmanager
async def connect(auth: WardenAuth, server: str | None = None, **client_options: Any) -> AsyncIterator[Any]:
    """An initialised `mcp.Client` on Warden's MCP gateway: `/mcp` (every tool server the agent may use) or
    `/mcp/<server>`. `client_options` go to `mcp.Client` (for example `mode=`)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    url = auth.server + "/mcp" + (f"/{server}" if server else "")
    http = http_client(auth)
    try:
        async with Client(streamable_http_client(url, http_client=http), **client_options) as client:
            yield client
    finally:
        await http.aclose()
