"""Interop test of Warden's MCP gateway with the Python MCP SDK (mcp==2.3.0), client and servers.

    python mcp_interop.py [WARDEN_BIN WORKDIR]
    python mcp_interop.py --selftest

Live mode starts an upstream MCP server written with the SDK over streamable HTTP (mcp_upstream.py, which requires
the brokered credential and records the headers it receives), writes WORKDIR/warden.yaml with two MCP servers (`docs`
at that URL with the brokered credential docs-key; `local`, the same server over stdio, started and supervised by
Warden with its credential in LOCAL_TOKEN) and starts `WARDEN_BIN serve --config`. It registers agents through the
admin API and gets DPoP-bound tokens with joserfc, then drives the SDK's own client (`mcp.Client`, with an httpx Auth
hook that adds a fresh DPoP proof to every request) in both protocol eras (`mode="legacy"`: initialize and
Mcp-Session-Id, 2025-11-25; `mode="2026-07-28"`: stateless, Mcp-Method/Mcp-Name) against /mcp/docs, /mcp/local and the
aggregate /mcp, and checks: per-tool least privilege (a tool outside the manifest is absent and refused), the brokered
credential (and never the agent's token or proof) at the upstream, the stdio server's limited environment, DLP
redaction, a high-risk call held until `warden approvals approve`, a rug pull (the upstream restarted with a poisoned
description) hidden and refused until `warden mcp tools approve`, RFC 9728 metadata, and the audit entries.

Prints one line per check ("ok NAME" or "FAIL NAME: detail") and at the end "N passed, M failed"; exits 1 when any
check failed. The live mode needs mcp==2.3.0, joserfc and requests.
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from interop_common import (Agent, CheckFailed, HTTP_TIMEOUT, Run, Server, State, Warden, describe, dpop_proof,
                            expect, free_port, get_token, keep_loopback_off_proxy, register_and_enroll)

keep_loopback_off_proxy()

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLI_TIMEOUT = 60
CALL_TIMEOUT = 30  # seconds, every MCP session in this script


def config_text(port: int, data: str, upstream_port: int) -> str:
    return f"""listen: 127.0.0.1:{port}
data: {data}
routes: {{}}
mcp_servers:
  docs:
    url: http://127.0.0.1:{upstream_port}/mcp
    credential: docs-key
    tools: {{delete: {{risk: high}}}}
    refresh: 0s
    approval_timeout: 60s
  local:
    command: [{json.dumps(sys.executable)}, {json.dumps(os.path.join(HERE, "mcp_upstream.py"))}, stdio]
    credential: {{secret: local-key, env: LOCAL_TOKEN}}
    env: {{PYTHONPATH: {json.dumps(HERE)}}}
"""


class UpstreamProcess:
    """mcp_upstream.py over streamable HTTP on a fixed port; restartable (poisoned or not)."""

    def __init__(self, workdir: str):
        self.port = free_port()
        self.record = os.path.join(workdir, "upstream-requests.jsonl")
        self.log = os.path.join(workdir, "upstream.log")
        self.proc = None

    def start(self, poisoned=False):
        args = [sys.executable, os.path.join(HERE, "mcp_upstream.py"), "http", str(self.port), self.record]
        if poisoned:
            args.append("--poisoned")
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        import requests

        for _ in range(200):
            try:
                requests.get(f"http://127.0.0.1:{self.port}/mcp", headers={"X-Probe": "1"}, timeout=0.5)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise CheckFailed("the upstream MCP server did not start")

    def stop(self):
        if self.proc is not None:
            # Killed, not terminated: uvicorn's graceful stop would wait for Warden's idle keep-alive connection.
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def requests(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [r for r in rows if not any(k.lower() == "x-probe" for k, _ in r["headers"])]


def dpop_auth(agent: Agent, token: str):
    """An httpx Auth hook: the SDK's transport calls it for every request, so each gets its own DPoP proof."""
    import httpx2

    class DPoPAuth(httpx2.Auth):
        def auth_flow(self, request):
            request.headers["Authorization"] = f"DPoP {token}"
            url = str(request.url.copy_with(query=None, fragment=None))
            request.headers["DPoP"] = dpop_proof(agent.key, request.method, url, access_token=token)
            yield request

    return DPoPAuth()


async def session(w: Warden, agent: Agent, token: str, path: str, mode: str, steps):
    """Runs `steps(client)` in an SDK client session to `path`."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(auth=dpop_auth(agent, token))
    try:
        async with Client(streamable_http_client(w.base + path, http_client=http), mode=mode) as client:
            return await asyncio.wait_for(steps(client), CALL_TIMEOUT)
    finally:
        await http.aclose()


def run_session(w, agent, token, path, mode, steps):
    try:
        return asyncio.run(asyncio.wait_for(session(w, agent, token, path, mode, steps), CALL_TIMEOUT + 5))
    except BaseExceptionGroup as group:
        # The SDK's task groups wrap what failed: report the first real error.
        e = group
        while isinstance(e, BaseExceptionGroup):
            e = e.exceptions[0]
        if isinstance(e, CheckFailed):
            raise e
        raise CheckFailed(f"{mode} session to {path}: {type(e).__name__}: {e}") from e


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def expect_error(coro, code: int, what: str):
    from mcp.shared.exceptions import MCPError

    try:
        r = await coro
    except MCPError as e:
        expect(e.code == code, f"{what}: expected error {code}, got {e.code} {e.message!r}")
        return e
    raise CheckFailed(f"{what}: expected MCP error {code}, got a result: {r}")


def cli(w: Warden, *args):
    env = dict(os.environ, WARDEN_ADMIN_TOKEN=w.admin_token())
    r = subprocess.run([w.server.binary, *args, "--server", w.base], capture_output=True, text=True, env=env,
                       timeout=CLI_TIMEOUT)
    expect(r.returncode == 0, f"warden {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[:300]}")
    return r.stdout


def audit_events(w: Warden):
    r = w.admin("GET", "/v1/admin/audit/events", params={"limit": "1000"})
    expect(r.status_code == 200, f"audit: {describe(r)}")
    return r.json().get("events", [])


def live(binary: str, workdir: str) -> int:
    run = Run()
    st = State()
    port = free_port()
    data = os.path.join(workdir, "data")
    upstream = UpstreamProcess(workdir)
    cfg = os.path.join(workdir, "warden.yaml")
    with open(cfg, "w") as f:
        f.write(config_text(port, data, upstream.port))
    server = Server(binary, workdir, port, config=cfg)
    w = Warden(server)
    try:
        upstream.start()
        server.start()

        def setup():
            for name, value in (("docs-key", "docs-secret"), ("local-key", "local-secret")):
                r = w.http.put(w.base + f"/v1/admin/secrets/{name}", data=value,
                               headers={"Authorization": "Bearer " + w.admin_token()}, timeout=HTTP_TIMEOUT)
                expect(r.status_code == 200, f"secret {name}: {describe(r)}")
            bot = Agent("doc-bot", {"name": "doc-bot", "owner": "docs@example.com", "roles": ["support"],
                                    "tools": ["docs/*", "local/*"]})
            reader = Agent("reader-bot", {"name": "reader-bot", "owner": "docs@example.com", "roles": ["support"],
                                          "tools": ["docs/search"]})
            for a in (bot, reader):
                register_and_enroll(w, a)
            st["bot"], st["reader"] = bot, reader
            st["bot_token"] = get_token(w, bot)["access_token"]
            st["reader_token"] = get_token(w, reader)["access_token"]
        run.check("setup: secrets, two agents enrolled, DPoP tokens", setup)

        def legacy_era():
            bot, token = st.need("bot", "bot_token")

            async def steps(c):
                expect(c.protocol_version == "2025-11-25", f"protocol {c.protocol_version}")
                names = sorted(t.name for t in (await c.list_tools()).tools)
                expect(names == ["delete", "env", "leak", "read", "search"], f"tools {names}")
                r = await c.call_tool("search", {"query": "alpha"})
                expect(not r.is_error and text_of(r) == "[1]", f"search: {r}")
                r = await c.call_tool("read", {"id": 2})
                expect(text_of(r) == "Beta document", f"read: {r}")
                await expect_error(c.call_tool("read", {"id": "two"}), -32602, "read with a string id")
            run_session(w, bot, token, "/mcp/docs", "legacy", steps)
        run.check("2025-11-25 (SDK client, mode=legacy): initialize, list, call through /mcp/docs", legacy_era)

        def modern_era():
            bot, token = st.need("bot", "bot_token")

            async def steps(c):
                names = sorted(t.name for t in (await c.list_tools()).tools)
                expect(names == ["delete", "env", "leak", "read", "search"], f"tools {names}")
                r = await c.call_tool("read", {"id": 1})
                expect(text_of(r) == "Alpha document", f"read: {r}")
                r = await c.read_resource("doc://readme")
                expect(r.contents[0].text == "Hello from the readme.", f"resource: {r}")
                p = await c.get_prompt("summarize", {"topic": "MCP"})
                expect("Please summarize: MCP" in json.dumps(p.model_dump(mode="json")), f"prompt: {p}")
            run_session(w, bot, token, "/mcp/docs", "2026-07-28", steps)
        run.check("2026-07-28 (SDK client): stateless list, call, resources/read, prompts/get", modern_era)

        def least_privilege():
            reader, token = st.need("reader", "reader_token")

            async def steps(c):
                names = sorted(t.name for t in (await c.list_tools()).tools)
                expect(names == ["search"], f"reader sees {names}")
                await expect_error(c.call_tool("read", {"id": 1}), -32003, "reader calls read")
                await expect_error(c.call_tool("delete", {"id": 1}), -32003, "reader calls delete")
            for mode in ("legacy", "2026-07-28"):
                run_session(w, reader, token, "/mcp/docs", mode, steps)
        run.check("a tool outside the manifest is absent from the list and refused on call (both eras)",
                  least_privilege)

        def aggregate_and_stdio():
            bot, token = st.need("bot", "bot_token")

            async def steps(c):
                names = sorted(t.name for t in (await c.list_tools()).tools)
                expect("docs.search" in names and "local.env" in names and "local.read" in names, f"tools {names}")
                r = await c.call_tool("local.read", {"id": 3})
                expect(text_of(r) == "Gamma document", f"local.read: {r}")
                env = json.loads(text_of(await c.call_tool("local.env", {})))
                expect(env["token_ok"], "the stdio server did not get its brokered credential in LOCAL_TOKEN")
                allowed = {"PATH", "LANG", "HOME", "LOCAL_TOKEN", "PYTHONPATH", "LC_CTYPE"}
                extra = [n for n in env["names"] if n not in allowed]
                expect(not extra, f"the stdio server saw more environment than configured: {extra}")
            run_session(w, bot, token, "/mcp", "2026-07-28", steps)
            run_session(w, bot, token, "/mcp", "legacy", steps)
        run.check("aggregate /mcp: <server>.<tool> names; the stdio server (started by Warden) with a limited env",
                  aggregate_and_stdio)

        def dlp():
            bot, token = st.need("bot", "bot_token")

            async def steps(c):
                t = text_of(await c.call_tool("leak", {}))
                expect("AKIAIOSFODNN7EXAMPLE" not in t and "[REDACTED:aws_access_key]" in t, f"leak: {t}")
                expect("ops@example.com" not in t, f"email kept: {t}")
            run_session(w, bot, token, "/mcp/docs", "legacy", steps)
        run.check("a secret in a tool result is redacted", dlp)

        def approval():
            bot, token = st.need("bot", "bot_token")
            outcome = {}

            def call():
                async def steps(c):
                    outcome["text"] = text_of(await c.call_tool("delete", {"id": 3}))
                try:
                    run_session(w, bot, token, "/mcp/docs", "legacy", steps)
                except Exception as e:  # reported below
                    outcome["error"] = repr(e)
            t = threading.Thread(target=call)
            t.start()
            held = None
            for _ in range(200):
                items = json.loads(cli(w, "approvals", "list", "--json"))["approvals"]
                if items:
                    held = items[0]
                    break
                time.sleep(0.05)
            expect(held is not None, "no call appeared in `warden approvals list`")
            expect(held["tool"] == "delete" and held["arguments"] == {"id": 3} and held["agent"] == bot.spiffe_id,
                   f"held call: {held}")
            expect("text" not in outcome, "the call finished before approval")
            cli(w, "approvals", "approve", held["id"], "--approver", "alice")
            t.join(CALL_TIMEOUT)
            expect(outcome.get("text") == "deleted 3", f"after approval: {outcome}")
        run.check("a high-risk tool waits for approval and proceeds after `warden approvals approve`", approval)

        def denial():
            bot, token = st.need("bot", "bot_token")
            outcome = {}

            def call():
                async def steps(c):
                    await expect_error(c.call_tool("delete", {"id": 2}), -32010, "denied delete")
                    outcome["ok"] = True
                try:
                    run_session(w, bot, token, "/mcp/docs", "2026-07-28", steps)
                except Exception as e:
                    outcome["error"] = repr(e)
            t = threading.Thread(target=call)
            t.start()
            for _ in range(200):
                items = json.loads(cli(w, "approvals", "list", "--json"))["approvals"]
                if items:
                    cli(w, "approvals", "deny", items[0]["id"], "--reason", "not today")
                    break
                time.sleep(0.05)
            t.join(CALL_TIMEOUT)
            expect(outcome.get("ok"), f"denied call: {outcome}")
        run.check("a denied approval fails the call with an MCP error (2026-07-28)", denial)

        def rug_pull():
            bot, token = st.need("bot", "bot_token")
            upstream.stop()
            upstream.start(poisoned=True)

            async def hidden(c):
                names = sorted(t.name for t in (await c.list_tools()).tools)
                expect("read" not in names and "search" in names, f"after the rug pull: {names}")
                await expect_error(c.call_tool("read", {"id": 1}), -32011, "call of the changed tool")
            run_session(w, bot, token, "/mcp/docs", "legacy", hidden)
            listed = cli(w, "mcp", "tools", "list")
            expect("docs/read\tpending" in listed, f"tools list: {listed}")
            diff = cli(w, "mcp", "tools", "diff", "docs/read")
            expect("+ " in diff and "IMPORTANT" in diff and "- " in diff, f"diff: {diff}")
            expect("hidden_directive" in diff, f"diff does not show the injection flags: {diff}")
            cli(w, "mcp", "tools", "approve", "docs/read")

            async def back(c):
                names = sorted(t.name for t in (await c.list_tools()).tools)
                expect("read" in names, f"after approval: {names}")
                expect(text_of(await c.call_tool("read", {"id": 1})) == "Alpha document", "read after approval")
            run_session(w, bot, token, "/mcp/docs", "2026-07-28", back)
        run.check("a changed tool definition is blocked until `warden mcp tools approve`", rug_pull)

        def no_passthrough():
            seen = upstream.requests()
            expect(len(seen) > 10, f"the upstream saw {len(seen)} requests")
            for r in seen:
                h = {k.lower(): v for k, v in r["headers"]}
                expect("dpop" not in h, "a DPoP proof reached the upstream")
                expect(h.get("authorization") == "Bearer docs-secret", f"upstream Authorization: {h.get('authorization')}")
            bot_token, reader_token = st.need("bot_token", "reader_token")
            blob = json.dumps(seen)
            expect(bot_token not in blob and reader_token not in blob, "an agent's token reached the upstream")
        run.check("no token passthrough: the upstream saw the brokered credential only", no_passthrough)

        def metadata():
            r = w.http.post(w.base + "/mcp/docs", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                            timeout=HTTP_TIMEOUT)
            expect(r.status_code == 401, f"anonymous: {describe(r)}")
            challenge = r.headers.get("WWW-Authenticate", "")
            url = w.base + "/.well-known/oauth-protected-resource/mcp/docs"
            expect(f'resource_metadata="{url}"' in challenge, f"challenge: {challenge}")
            m = w.get("/.well-known/oauth-protected-resource/mcp/docs").json()
            expect(m["resource"] == w.base + "/mcp/docs" and m["authorization_servers"] == [w.base], f"metadata {m}")
            expect(m["dpop_bound_access_tokens_required"] is True, f"metadata {m}")
        run.check("RFC 9728: 401 names the protected-resource metadata, which names Warden as the AS", metadata)

        def audit():
            events = audit_events(w)
            actions = [e.get("action") for e in events]
            calls = [e for e in events if e.get("action") == "mcp:tools/call"]
            allowed = [e for e in calls if e.get("decision") == "allow"]
            expect(allowed and all(e["details"].get("arguments_digest", "").startswith("sha256:") for e in allowed),
                   "allowed calls lack an arguments digest")
            expect(any(e.get("resource") == 'Tool::"docs/read"' and e.get("decision") == "deny"
                       and e.get("reason") == "insufficient_scope" for e in calls), "the reader's refusal is missing")
            for a in ("mcp.tool.pin", "mcp.tool.changed", "mcp.tool.approve", "mcp.approval.request",
                      "mcp.approval.approve", "mcp.approval.deny", "mcp.dlp"):
                expect(a in actions, f"no {a} entry in the audit log")
            blob = json.dumps(events)
            expect("AKIAIOSFODNN7EXAMPLE" not in blob and "docs-secret" not in blob, "a secret reached the audit log")
        run.check("audit: calls with tool and argument digest, pins, the change, approvals, DLP; no secrets", audit)
    except CheckFailed as e:
        run.check("startup", lambda: (_ for _ in ()).throw(e))
    finally:
        status = server.stop()
        upstream.stop()
        if status not in (0, None):
            print(f"note: warden serve exited with {status}")
    return run.summary()


def selftest() -> int:
    run = Run()

    def config():
        text = config_text(8443, "/tmp/d", 9000)
        expect("url: http://127.0.0.1:9000/mcp" in text and "env: LOCAL_TOKEN" in text, text)
    run.check("the generated configuration names both servers", config)
    return run.summary()


def main() -> int:
    if sys.argv[1:] == ["--selftest"]:
        return selftest()
    binary = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WARDEN_BIN", os.path.join(ROOT, ".build/debug/warden"))
    workdir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="warden-mcp-interop-")
    os.makedirs(workdir, exist_ok=True)
    failed = live(binary, workdir)
    if failed == 0 and len(sys.argv) <= 2:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
