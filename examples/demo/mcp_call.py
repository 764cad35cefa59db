"""The demo's MCP client: the SDK's stock client, no auth code, talking to the sidecar (`warden agent proxy`)."""
import asyncio
import sys

from mcp import Client


async def main(url: str) -> None:
    async with Client(url) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        print(f"  tools the bot may see: {tools}")
        result = await client.call_tool("search", {"query": "printer"})
        print("  kb/search:", "".join(getattr(c, "text", "") for c in result.content))
        try:
            await client.call_tool("purge", {})
            print("  kb/purge: SERVED (unexpected)")
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - the SDK's MCPError
            print(f"  kb/purge: refused ({getattr(e, 'code', '')} {getattr(e, 'message', e)})")


asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
