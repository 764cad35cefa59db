"""warden-agent against a live Warden: requests, httpx, renewal, nonces, revocation, concurrency, MCP, examples."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
import requests

import warden_agent
from warden_agent import WardenError

from conftest import TOKEN_TTL, Live

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


@pytest.fixture
def agent(live: Live, tmp_path, request) -> warden_agent.WardenAuth:
    return live.new_agent(re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name)[:48].strip("-"), str(tmp_path))


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_requests_and_httpx(live: Live, agent: warden_agent.WardenAuth) -> None:
    r = requests.get(live.base + "/r/echo/v1/tickets/1?x=1", auth=agent, timeout=10)
    assert r.status_code == 200, r.text
    seen = r.json()
    # The upstream gets Warden's view of the caller, never the agent's token or proof.
    assert seen["agent"] == agent.spiffe_id and seen["authorization"] is None and seen["dpop"] is None
    with httpx.Client(auth=agent.httpx(), trust_env=False) as client:
        r = client.post(live.base + "/r/echo/v1/tickets", json={"title": "printer on fire"})
        assert r.status_code == 200 and r.json()["method"] == "POST"
    assert agent.tokens_issued == 1


def test_nonce_challenge_is_answered_once(live: Live, agent: warden_agent.WardenAuth) -> None:
    # The server requires nonces: the token request above took one. Forget it: the next call is challenged, answered.
    agent.token()
    agent._nonces.clear()
    r = requests.get(live.base + "/r/echo/nonce", auth=agent, timeout=10)
    assert r.status_code == 200
    assert [h.status_code for h in r.history] == [401]
    assert "use_dpop_nonce" in r.history[0].headers["WWW-Authenticate"]
    agent._nonces.clear()
    with httpx.Client(auth=agent.httpx(), trust_env=False) as client:
        assert client.get(live.base + "/r/echo/nonce").status_code == 200


def test_renewal_across_token_expiry(live: Live, agent: warden_agent.WardenAuth) -> None:
    # Three token lifetimes of calls every quarter second: never refused, renewed before expiry.
    refused = 0
    deadline = time.monotonic() + 3 * TOKEN_TTL
    calls = 0
    while time.monotonic() < deadline:
        r = requests.get(live.base + "/r/echo/renewal", auth=agent, timeout=10)
        refused += r.status_code != 200 or any(h.status_code == 401 and "invalid_token" in h.headers.get("WWW-Authenticate", "") for h in r.history)
        calls += 1
        time.sleep(0.25)
    assert refused == 0
    assert agent.tokens_issued >= 3, agent.tokens_issued
    assert calls >= 3 * TOKEN_TTL * 2


def test_a_revoked_token_is_renewed(live: Live, agent: warden_agent.WardenAuth) -> None:
    token = agent.token()
    r = live.admin("POST", "/v1/admin/revocations", {"jti": claims(token.value)["jti"], "reason": "test"})
    assert r.status_code == 200, r.text
    r = requests.get(live.base + "/r/echo/after-revocation", auth=agent, timeout=10)
    assert r.status_code == 200
    assert any("invalid_token" in h.headers.get("WWW-Authenticate", "") for h in r.history)
    assert agent.token().value != token.value


def test_sixteen_threads_share_one_agent(live: Live, agent: warden_agent.WardenAuth) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        with requests.Session() as s:
            for i in range(25):
                r = s.get(live.base + f"/r/echo/threads/{i}", auth=agent, timeout=10)
                with lock:
                    statuses.append(r.status_code)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == [200] * 400
    # One renewal at a time: the tokens issued are those the lifetime needs, not one per thread.
    assert agent.tokens_issued <= 2 + 16 * 25 // 50, agent.tokens_issued


def test_sixteen_tasks_share_one_agent(live: Live, agent: warden_agent.WardenAuth) -> None:
    async def main() -> list[int]:
        async with httpx.AsyncClient(auth=agent.httpx(), trust_env=False, timeout=10) as client:

            async def work(n: int) -> list[int]:
                return [(await client.get(live.base + f"/r/echo/tasks/{n}/{i}")).status_code for i in range(25)]

            results = await asyncio.gather(*(work(n) for n in range(16)))
            return [s for r in results for s in r]

    assert asyncio.run(main()) == [200] * 400
    assert agent.tokens_issued <= 2 + 16 * 25 // 50, agent.tokens_issued


def test_mcp_sdk_through_warden(live: Live, agent: warden_agent.WardenAuth) -> None:
    from warden_agent.mcp import connect

    async def main() -> tuple[list[str], str, str]:
        async with connect(agent, "lab") as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            result = await client.call_tool("add", {"a": 2, "b": 3})
            text = "".join(getattr(c, "text", "") for c in result.content)
            try:
                refused = await client.call_tool("shutdown", {})
                outcome = "served: " + "".join(getattr(c, "text", "") for c in refused.content)
            except Exception as e:  # noqa: BLE001 - the SDK raises its MCPError
                outcome = f"refused {getattr(e, 'code', '')}"
            return tools, text, outcome

    tools, text, outcome = asyncio.run(asyncio.wait_for(main(), 60))
    assert tools == ["add"]  # only what the manifest names
    assert text == "5"
    assert outcome == "refused -32003", outcome  # insufficient_scope: not in the manifest


def test_enrollment_refusals_and_key_files(live: Live, tmp_path) -> None:
    r = live.admin("POST", "/v1/admin/agents", {"name": "once-bot", "owner": "a@example.com", "roles": ["support"]})
    reg = r.json()
    key = warden_agent.generate_key()
    warden_agent.enroll(live.base, reg["join_token"], key, reg["manifest_digest"])
    with pytest.raises(WardenError) as used:
        warden_agent.enroll(live.base, reg["join_token"], warden_agent.generate_key(), reg["manifest_digest"])
    assert used.value.status in (400, 401, 403)
    path = tmp_path / "k.pem"
    warden_agent.save_key(key, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        warden_agent.save_key(key, path)
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError):
        warden_agent.load_key(path)


@pytest.mark.parametrize("example", ["langchain_tool.py", "openai_agents_tool.py"])
def test_examples_run_without_a_model(live: Live, agent: warden_agent.WardenAuth, tmp_path, example: str) -> None:
    key_file = tmp_path / "example.pem"
    warden_agent.save_key(agent.key, key_file)
    env = dict(
        os.environ,
        WARDEN_SERVER=live.base,
        WARDEN_KEY_FILE=str(key_file),
        WARDEN_SPIFFE_ID=agent.spiffe_id,
        WARDEN_ROUTE="echo",
    )
    env.pop("OPENAI_API_KEY", None)
    r = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, example)], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert agent.spiffe_id in r.stdout, r.stdout
