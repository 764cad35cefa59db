"""A live Warden for the client's tests: `warden serve` (the repository's debug build, or $WARDEN_BIN) on loopback
with a short access-token lifetime and server nonces required, an echo upstream behind route `echo`, a stdio MCP
server `lab`, and an enrolled agent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import warden_agent

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TOKEN_TTL = 4  # seconds: renewal happens during the tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what reached it (method, path, the headers Warden added or left)."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        data = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "body_bytes": len(body),
                "agent": self.headers.get("X-Warden-Agent"),
                "authorization": self.headers.get("Authorization"),
                "dpop": self.headers.get("DPoP"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


class Live:
    def __init__(self, base: str, data: str, proc: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.data = data
        self.proc = proc

    def admin(self, method: str, path: str, body: object = None) -> requests.Response:
        with open(os.path.join(self.data, "admin.token")) as f:
            token = f.read().strip()
        return requests.request(
            method, self.base + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def new_agent(self, name: str, key_dir: str) -> warden_agent.WardenAuth:
        """Registers `name` (role support, route echo, the lab's add tool), enrolls a new key with the library and
        returns its WardenAuth."""
        manifest = {
            "name": name,
            "owner": "agents@example.com",
            "roles": ["support"],
            "routes": ["echo"],
            "tools": ["lab/add"],
        }
        r = self.admin("POST", "/v1/admin/agents", manifest)
        assert r.status_code == 201, r.text
        reg = r.json()
        key = warden_agent.generate_key()
        path = os.path.join(key_dir, f"{name}.pem")
        warden_agent.save_key(key, path)
        enrolled = warden_agent.enroll(self.base, reg["join_token"], warden_agent.load_key(path), reg["manifest_digest"])
        assert enrolled.state == "active" and enrolled.spiffe_id == reg["spiffe_id"]
        return warden_agent.WardenAuth(self.base, key, enrolled.spiffe_id)


def stop(proc: subprocess.Popen[bytes], log) -> None:
    """SIGTERM, then SIGKILL after ten seconds; closes its log."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def binary() -> str | None:
    path = os.environ.get("WARDEN_BIN") or os.path.join(REPO, ".build", "debug", "warden")
    return path if os.access(path, os.X_OK) else None


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory):
    bin_path = binary()
    if bin_path is None:
        pytest.skip("no warden binary: build it first (swift build) or set WARDEN_BIN")
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    work = tmp_path_factory.mktemp("warden")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    data = str(work / "data")
    config = work / "warden.yaml"
    config.write_text(
        f"""listen: 127.0.0.1:{port}
data: {data}
tokens: {{access_ttl: {TOKEN_TTL}s}}
dpop: {{require_nonce: true}}
rate_limits: null
routes:
  echo: {{upstream: "http://127.0.0.1:{upstream.server_address[1]}", segment: support}}
mcp_servers:
  lab:
    command: [{json.dumps(sys.executable)}, {json.dumps(os.path.join(HERE, "lab_mcp.py"))}]
"""
    )
    log = open(work / "warden.log", "wb")
    proc = subprocess.Popen([bin_path, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"warden exited; see {work / 'warden.log'}"
        try:
            if requests.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "warden was not ready within 60 s"
        time.sleep(0.1)
    try:
        yield Live(base, data, proc)
    finally:
        stop(proc, log)
        upstream.shutdown()


@pytest.fixture(scope="session")
def proxy(live: Live, tmp_path_factory: pytest.TempPathFactory):
    """`warden agent proxy` for an agent of its own: plain HTTP on loopback, credentials added by the sidecar."""
    work = tmp_path_factory.mktemp("proxy")
    auth = live.new_agent("proxied-bot", str(work))
    key_file = work / "proxied-bot.pem"
    # The CLI's key files carry the SPIFFE ID beside them (<key>.json, written at enrollment).
    (work / "proxied-bot.pem.json").write_text(json.dumps({"spiffe_id": auth.spiffe_id}))
    port = free_port()
    log = open(work / "proxy.log", "wb")
    proc = subprocess.Popen(
        [binary(), "agent", "proxy", "--server", live.base, "--key", str(key_file), "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"the proxy exited; see {work / 'proxy.log'}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the proxy did not listen within 30 s"
            time.sleep(0.1)
    try:
        yield base, auth, str(key_file)
    finally:
        stop(proc, log)
