"""An OpenAI Agents SDK tool that calls a service through Warden (same environment as langchain_tool.py).

Without OPENAI_API_KEY the tool's function is called directly (no model needed); with it, an Agent decides to call
the tool. Every request carries the agent's DPoP-bound token and a fresh proof, renewed as needed (httpx, async).
"""

import asyncio
import os

import httpx
from agents import Agent, Runner, function_tool

import warden_agent

auth = warden_agent.WardenAuth(
    os.environ.get("WARDEN_SERVER", "http://127.0.0.1:8443"),
    warden_agent.load_key(os.environ["WARDEN_KEY_FILE"]),
    os.environ["WARDEN_SPIFFE_ID"],
)
ROUTE = os.environ.get("WARDEN_ROUTE", "tickets")


async def lookup_ticket(ticket_id: str) -> str:
    """Look a support ticket up by its id."""
    async with httpx.AsyncClient(auth=auth.httpx(), timeout=10) as client:
        r = await client.get(f"{auth.server}/r/{ROUTE}/v1/tickets/{ticket_id}")
    if r.status_code != 200:
        return f"refused by Warden: HTTP {r.status_code} {r.text[:200]}"
    return r.text


lookup_ticket_tool = function_tool(lookup_ticket)

if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        agent = Agent(name="support", instructions="Answer with the ticket's content.", tools=[lookup_ticket_tool])
        print(Runner.run_sync(agent, "What does ticket 42 say?").final_output)
    else:
        assert lookup_ticket_tool.name == "lookup_ticket"
        print(asyncio.run(lookup_ticket("42")))
