"""Helpers shared by the interop scripts in this folder (identity_interop.py, audit_interop.py, jose_interop.py).

The scripts are run as `python Tests/Interop/<script>.py ...`, so this folder is on sys.path and they import this
module by name. Only the standard library is imported here at module level: audit_interop.py --selftest must run
without any third-party package. The functions and classes that need requests or joserfc import them when called.
"""
import base64
import hashlib
import json
import os
import secrets
import socket
import subprocess
import time
import traceback
import uuid

HTTP_TIMEOUT = 10  # seconds, every HTTP call
START_TIMEOUT = 30  # seconds to wait for /readyz after starting the server
STOP_TIMEOUT = 10  # seconds to wait for the server to exit after SIGTERM
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def keep_loopback_off_proxy():
    """Everything talks to 127.0.0.1: keep any proxy configured in the environment out of it (requests and the
    urllib used by PyJWKClient both honour these)."""
    for var in ("NO_PROXY", "no_proxy"):
        os.environ[var] = "127.0.0.1,localhost"


# ---------------------------------------------------------------------------------------------------------------
# Checks and reporting


class CheckFailed(Exception):
    pass


def expect(cond, message):
    if not cond:
        raise CheckFailed(message)


class State(dict):
    """State shared between checks: a check stores what it produced, a later one asks for it with need()."""

    def need(self, *keys):
        missing = [k for k in keys if k not in self]
        if missing:
            raise CheckFailed("skipped: an earlier check did not produce " + ", ".join(missing))
        return [self[k] for k in keys] if len(keys) > 1 else self[keys[0]]


class Run:
    """Runs checks, printing "ok NAME" or "FAIL NAME: detail" for each, and at the end "N passed, M failed"."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name: str, fn):
        try:
            fn()
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL {name}: {e}", flush=True)
            return False
        except Exception as e:  # noqa: BLE001 - an unexpected error is a failure of this check, not of the run
            self.failed += 1
            tb = traceback.extract_tb(e.__traceback__)[-1]
            print(f"FAIL {name}: {type(e).__name__}: {e} (line {tb.lineno})", flush=True)
            return False
        self.passed += 1
        print(f"ok {name}", flush=True)
        return True

    def summary(self) -> int:
        """Prints "N passed, M failed"; returns the exit status (1 when any check failed)."""
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


# ---------------------------------------------------------------------------------------------------------------
# Encoding


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def describe(resp, www_authenticate=True) -> str:
    """A response for a failure message: status, WWW-Authenticate (unless www_authenticate is False), body."""
    body = resp.text
    if len(body) > 300:
        body = body[:300] + "..."
    www = resp.headers.get("WWW-Authenticate") if www_authenticate else None
    return f"HTTP {resp.status_code}" + (f" WWW-Authenticate: {www}" if www else "") + f" body: {body}"


# ---------------------------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def terminate(proc) -> None:
    """SIGTERM to a subprocess, SIGKILL if it has not exited after STOP_TIMEOUT seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


class Server:
    """`BINARY serve --data WORKDIR/data --listen 127.0.0.1:PORT [--tls-listen 127.0.0.1:TLS_PORT]`, its output
    appended to WORKDIR/warden-serve.log. With `config`: `BINARY serve --config CONFIG [--tls-listen ...]` instead,
    the file being expected to say `listen: 127.0.0.1:PORT` and `data: WORKDIR/data`."""

    def __init__(self, binary: str, workdir: str, port: int, tls_port=None, config=None):
        self.binary = binary
        self.config = config
        self.tls_port = tls_port
        self.tls_base = f"https://127.0.0.1:{tls_port}" if tls_port is not None else None
        self.data = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "warden-serve.log")
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc = None
        self.log = None

    def start(self):
        """Starts the server and waits (at most START_TIMEOUT s) until /readyz answers 200."""
        import requests

        if self.config is not None:
            args = [self.binary, "serve", "--config", self.config]
        else:
            args = [self.binary, "serve", "--data", self.data, "--listen", f"127.0.0.1:{self.port}"]
        if self.tls_port is not None:
            args += ["--tls-listen", f"127.0.0.1:{self.tls_port}"]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"the server exited with status {self.proc.returncode}; see {self.log_path}")
            try:
                # /readyz: the server refuses proofs that may predate its start (without a nonce) for a few
                # seconds after it; these clients do not retry with a nonce, so they wait for readiness.
                r = requests.get(self.base + "/readyz", timeout=1)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:
                last = type(e).__name__
            time.sleep(0.1)
        raise CheckFailed(f"the server was not ready within {START_TIMEOUT} s ({last}); see {self.log_path}")

    def stop(self):
        """SIGTERM, then wait; returns the exit status (None if it was not running)."""
        status = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                status = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
                status = "killed after SIGTERM timed out"
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None
        return status


# ---------------------------------------------------------------------------------------------------------------
# Clients


class Warden:
    """HTTP helpers against one server (base URL = issuer)."""

    def __init__(self, server: Server):
        import requests

        self.server = server
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only; never through a proxy

    @property
    def base(self) -> str:
        return self.server.base

    def admin_token(self) -> str:
        with open(os.path.join(self.server.data, "admin.token")) as f:
            return f.read().strip()

    def admin(self, method: str, path: str, body=None, params=None, token=True):
        headers = {"Authorization": "Bearer " + self.admin_token()} if token else {}
        return self.http.request(method, self.base + path, json=body, params=params, headers=headers,
                                 timeout=HTTP_TIMEOUT)

    def get(self, path: str, **kw):
        return self.http.get(self.base + path, timeout=HTTP_TIMEOUT, **kw)

    def post(self, path: str, **kw):
        return self.http.post(self.base + path, timeout=HTTP_TIMEOUT, **kw)


class Agent:
    def __init__(self, name: str, manifest: dict):
        self.name = name
        self.manifest = manifest
        self.key = None
        self.registration = None
        self.spiffe_id = None


def new_key():
    """A P-256 joserfc ECKey with its private part."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-256", private=True)


def public_jwk(key) -> dict:
    d = key.as_dict(private=False)
    return {k: d[k] for k in ("kty", "crv", "x", "y")}


def ath(access_token: str) -> str:
    """RFC 9449 §4.2: the `ath` claim, base64url(SHA-256(ASCII(access_token)))."""
    return b64url(hashlib.sha256(access_token.encode()).digest())


def dpop_proof(key, method: str, url: str, access_token=None, iat=None, jwk=None) -> str:
    """An RFC 9449 DPoP proof made with joserfc."""
    from joserfc import jws

    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk or public_jwk(key)}
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time()) if iat is None else iat}
    if access_token is not None:
        claims["ath"] = ath(access_token)
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])


def client_assertion(key, spiffe_id: str, audience: str) -> str:
    """An RFC 7523 private_key_jwt client assertion made with joserfc."""
    from joserfc import jwt

    now = int(time.time())
    claims = {"iss": spiffe_id, "sub": spiffe_id, "aud": audience, "iat": now, "exp": now + 60,
              "jti": secrets.token_urlsafe(16)}
    return jwt.encode({"alg": "ES256", "typ": "JWT"}, claims, key, algorithms=["ES256"])


def enroll_request(w: Warden, key, join_token: str, manifest_digest: str, binary_sha256=None):
    attestation = {"manifest_digest": manifest_digest}
    if binary_sha256 is not None:
        attestation["binary_sha256"] = binary_sha256
    body = {"join_token": join_token, "jwk": public_jwk(key), "attestation": attestation}
    proof = dpop_proof(key, "POST", w.base + "/v1/enroll")
    return w.post("/v1/enroll", json=body, headers={"DPoP": proof})


def token_request(w: Warden, agent: Agent, **extra):
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(agent.key, agent.spiffe_id, w.base + "/v1/token")}
    form.update(extra)
    proof = dpop_proof(agent.key, "POST", w.base + "/v1/token")
    # A dict body makes requests send application/x-www-form-urlencoded.
    return w.post("/v1/token", data=form, headers={"DPoP": proof})


def register(w: Warden, agent: Agent) -> dict:
    """Registers `agent` through the admin API; records its registration and SPIFFE ID on it."""
    r = w.admin("POST", "/v1/admin/agents", agent.manifest)
    expect(r.status_code == 201, f"register {agent.name}: expected 201, got {describe(r)}")
    reg = r.json()
    for field in ("agent_id", "spiffe_id", "join_token", "expires_at", "manifest_digest"):
        expect(field in reg, f"register {agent.name}: response lacks {field}: {reg}")
    agent.registration = reg
    agent.spiffe_id = reg["spiffe_id"]
    return reg


def register_and_enroll(w: Warden, agent: Agent) -> dict:
    """Registers `agent`, gives it a new key and enrolls it with its manifest digest; returns the enrollment."""
    reg = register(w, agent)
    agent.key = new_key()
    r = enroll_request(w, agent.key, reg["join_token"], reg["manifest_digest"])
    expect(r.status_code == 200, f"enroll {agent.name}: expected 200, got {describe(r)}")
    body = r.json()
    expect(body.get("state") == "active", f"enroll {agent.name}: state is {body.get('state')!r}, not active")
    expect(body.get("spiffe_id") == reg["spiffe_id"],
           f"enroll {agent.name}: spiffe_id {body.get('spiffe_id')!r} != registered {reg['spiffe_id']!r}")
    expect(body.get("agent_id") == reg["agent_id"], f"enroll {agent.name}: agent_id differs from registration")
    return body


def get_token(w: Warden, agent: Agent, **extra) -> dict:
    """A client-credentials token for `agent` (DPoP-bound)."""
    r = token_request(w, agent, **extra)
    expect(r.status_code == 200, f"token for {agent.name}: expected 200, got {describe(r)}")
    t = r.json()
    expect(t.get("token_type") == "DPoP", f"token for {agent.name}: token_type is {t.get('token_type')!r}")
    return t
