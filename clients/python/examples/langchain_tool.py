"""A LangChain tool that calls a service through Warden.

The tool holds no secret of the service: Warden injects the service's credential, checks the agent's token and proof
and its policy on every call, and writes the audit log. The agent's own credential is its key (a 0600 PEM file) and
identity, from the environment:

    WARDEN_SERVER      Warden's URL (http://127.0.0.1:8443)
    WARDEN_KEY_FILE    the agent's P-256 key (written by `warden agent enroll` or warden_agent.save_key)
    WARDEN_SPIFFE_ID   spiffe://<trust domain>/agent/<name>
    WARDEN_ROUTE       the route to call (default: tickets)

Without OPENAI_API_KEY the tool is called directly (no model needed); with it, a tool-calling chat model from
langchain-openai (if installed) decides to call it.
"""

import os

import requests
from langchain_core.tools import tool

import warden_agent

auth = warden_agent.WardenAuth(
    os.environ.get("WARDEN_SERVER", "http://127.0.0.1:8443"),
    warden_agent.load_key(os.environ["WARDEN_KEY_FILE"]),
    os.environ["WARDEN_SPIFFE_ID"],
)
ROUTE = os.environ.get("WARDEN_ROUTE", "tickets")


@tool
def lookup_ticket(ticket_id: str) -> str:
    """Look a support ticket up by its id."""
    r = requests.get(f"{auth.server}/r/{ROUTE}/v1/tickets/{ticket_id}", auth=auth, timeout=10)
    if r.status_code != 200:
        return f"refused by Warden: HTTP {r.status_code} {r.text[:200]}"
    return r.text


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]

        model = ChatOpenAI(model="gpt-4o-mini").bind_tools([lookup_ticket])
        message = model.invoke("What does ticket 42 say?")
        for call in message.tool_calls:
            print(lookup_ticket.invoke(call["args"]))
    else:
        print(lookup_ticket.invoke({"ticket_id": "42"}))
