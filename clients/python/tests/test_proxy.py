"""Stock clients through `warden agent proxy`: no auth code in the client; the sidecar holds the key."""

from __future__ import annotations

import asyncio

import pytest
import requests


async def steps(client) -> tuple[list[str], str, str]:
    """List the tools, call `add`, and try `shutdown` (not in the manifest)."""
    tools = [t.name for t in (await client.list_tools()).tools]
    result = await client.call_tool("add", {"a": 40, "b": 2})
    text = "".join(getattr(c, "text", "") for c in result.content)
    try:
        await client.call_tool("shutdown", {})
        outcome = "served"
    except Exception as e:  # noqa: BLE001 - the SDK's MCPError
        outcome = f"refused {getattr(e, 'code', '')}"
    return tools, text, outcome


def expect_scoped(tools: list[str], text: str, outcome: str) -> None:
    assert tools == ["add"] and text == "42"
    assert outcome == "refused -32003", outcome  # insufficient_scope: not in the manifest


def test_plain_http_through_the_proxy(proxy) -> None:
    base, auth, _ = proxy
    r = requests.get(base + "/r/echo/v1/tickets/7?full=1", timeout=10)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["agent"] == auth.spiffe_id and seen["path"].endswith("/v1/tickets/7?full=1")
    assert seen["authorization"] is None and seen["dpop"] is None
    big = requests.post(base + "/r/echo/upload", data=b"x" * (3 << 20), timeout=30)  # streamed, not replayable
    assert big.status_code == 200 and big.json()["body_bytes"] == 3 << 20
    assert requests.get(base + "/v1/admin/agents", timeout=10).status_code == 404


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_stock_mcp_client_through_the_proxy(proxy, mode: str) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    base, _, _ = proxy

    async def main() -> tuple[list[str], str, str]:
        async with Client(streamable_http_client(base + "/mcp/lab"), mode=mode) as client:
            return await steps(client)

    expect_scoped(*asyncio.run(asyncio.wait_for(main(), 60)))


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_stock_stdio_client_through_the_bridge(live, proxy, mode: str) -> None:
    """The SDK's stdio client launches `warden agent mcp` as if it were the MCP server."""
    from mcp import Client, StdioServerParameters

    from conftest import binary

    _, _, key_file = proxy
    params = StdioServerParameters(
        command=binary(), args=["agent", "mcp", "--server", live.base, "--key", key_file, "--mcp", "lab"]
    )

    async def main() -> tuple[list[str], str, str]:
        async with Client(params, mode=mode) as client:
            return await steps(client)

    expect_scoped(*asyncio.run(asyncio.wait_for(main(), 60)))
