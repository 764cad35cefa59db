"""Interop test of `warden node` (the SPIFFE Workload API) with SPIFFE's own Python client, py-spiffe.

    python node_interop.py WARDEN_BIN WORKDIR

Starts `WARDEN_BIN serve`, registers a node and the agents it attests (their manifests name the node and the
selectors of their processes), starts `WARDEN_BIN node --join-token ... --socket WORKDIR/agent.sock` with a 12-second
SVID lifetime, and then, with py-spiffe (`pip install spiffe`) and grpcio and h2 for what py-spiffe cannot send:

- X509Source: the X.509-SVID of the agent this Python process is (uid and the interpreter's SHA-256), its chain
  verified with `cryptography` up to the bundle, its key matching; rotated (a new certificate streamed before the old
  one expires);
- JwtSource and WorkloadApiClient: a JWT-SVID (ES256, verified with PyJWT against the JWT bundle), ValidateJWTSVID,
  a forged one refused;
- a call without the `workload.spiffe.io` header: InvalidArgument;
- a process whose binary hash matches no manifest (a copy of the interpreter, one byte longer): PermissionDenied;
- pid reuse: a process connects, hands the connection to its child and exits; a process of an attested binary is
  started with the dead process's pid (ns_last_pid, as root); the connection then asks for SVIDs: PermissionDenied
  (the kernel's pid now names the attested binary; the node notices it is not the process that connected);
- a quarantined agent loses its SVIDs at the next sync and gets them back when reactivated;
- the agent's join token cannot enroll it (it is attested by its node);
- the JWT-SVID as an OAuth client assertion (jwt-spiffe) with a DPoP proof: a DPoP-bound access token that works at
  /v1/whoami; without the proof, or an access token in its place, refused.

Prints one line per check ("ok NAME" or "FAIL NAME: detail") and at the end "N passed, M failed".
Needs: spiffe, grpcio, h2, joserfc, pyjwt[crypto], cryptography, requests.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time

from interop_common import (Run, Server, State, Warden, b64url, describe, dpop_proof, expect, free_port,
                            keep_loopback_off_proxy, new_key, terminate)

keep_loopback_off_proxy()

import grpc  # noqa: E402
import jwt as pyjwt  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from spiffe import JwtSource, WorkloadApiClient, X509Source  # noqa: E402

SPIFFE_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
SVID_TTL = 12
HERE = os.path.dirname(os.path.abspath(__file__))


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def wait_until(cond, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def verify_chain(svid, bundle_certs):
    """The leaf is signed by the next certificate, and so on, and the last by a bundle root."""
    chain = svid.cert_chain
    for child, parent in zip(chain, chain[1:]):
        child.verify_directly_issued_by(parent)
    last = chain[-1]
    expect(any(_issued_by(last, root) for root in bundle_certs), "the chain does not end at a bundle root")


def _issued_by(cert, root) -> bool:
    try:
        cert.verify_directly_issued_by(root)
        return True
    except Exception:  # noqa: BLE001
        return False


def run_python_as_copy(workdir: str, code: str, env: dict):
    """Runs `code` under a copy of this interpreter made one byte longer (another SHA-256, same behaviour)."""
    real = os.path.realpath(sys.executable)
    copy = os.path.join(workdir, "python-copy")
    if not os.path.exists(copy):
        shutil.copyfile(real, copy)
        with open(copy, "ab") as f:
            f.write(b"\0")
        os.chmod(copy, 0o755)
    e = dict(os.environ)
    e.update(env)
    e["PYTHONHOME"] = sys.base_prefix
    e["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run([copy, "-c", code], env=e, capture_output=True, text=True, timeout=60)


def main() -> int:
    binary, workdir = sys.argv[1], sys.argv[2]
    run = Run()
    st = State()
    port = free_port()
    server = Server(binary, workdir, port)
    sock = os.path.join(workdir, "agent.sock")
    endpoint = "unix://" + sock
    node_log = open(os.path.join(workdir, "warden-node.log"), "ab")
    node = None
    python_hash = sha256_file(os.path.realpath(sys.executable))
    sleeper = os.path.join(workdir, "attested-sleep")
    shutil.copyfile(shutil.which("sleep"), sleeper)
    os.chmod(sleeper, 0o755)
    with open(sleeper, "ab") as f:  # its own hash, so that nothing else on the machine is this agent
        f.write(b"warden-node-interop\0")
    w = Warden(server)

    def start():
        nonlocal node
        server.start()
        manifests = {
            "node-a": {"name": "node-a", "owner": "ops@example.com"},
            "py-bot": {"name": "py-bot", "owner": "ops@example.com", "node": "node-a",
                       "selectors": [f"unix:uid:{os.getuid()}", f"unix:sha256:{python_hash}"]},
            "sleeper": {"name": "sleeper", "owner": "ops@example.com", "node": "node-a",
                        "selectors": [f"unix:uid:{os.getuid()}", f"unix:sha256:{sha256_file(sleeper)}"]},
        }
        for name, m in manifests.items():
            r = w.admin("POST", "/v1/admin/agents", m)
            expect(r.status_code == 201, f"register {name}: {describe(r)}")
            st[name] = r.json()
        # A binary hash alone can be faked by any local user (exec after connect, injected code): refused.
        r = w.admin("POST", "/v1/admin/agents", {"name": "hash-only", "owner": "ops@example.com", "node": "node-a",
                                                  "selectors": [f"unix:sha256:{python_hash}"]})
        expect(r.status_code == 400 and "unix:uid" in r.text, f"a node-attested agent without a uid: {describe(r)}")
        with open(os.path.join(workdir, "node.yaml"), "w") as f:
            f.write("name: node-a\nowner: ops@example.com\n")
        node = subprocess.Popen(
            [binary, "node", "--server", server.base, "--join-token", st["node-a"]["join_token"], "--manifest",
             os.path.join(workdir, "node.yaml"), "--key", os.path.join(workdir, "node.key"), "--socket", sock,
             "--svid-ttl", str(SVID_TTL), "--sync-interval", "1"],
            stdin=subprocess.DEVNULL, stdout=node_log, stderr=subprocess.STDOUT)
        wait_until(lambda: os.path.exists(sock) or node.poll() is not None, 30, "the node's socket")
        expect(node.poll() is None, f"warden node exited with {node.returncode}; see warden-node.log")
        expect(os.stat(os.path.join(workdir, "node.key")).st_mode & 0o777 == 0o600, "node.key is not 0600")

    def x509_source():
        src = X509Source(socket_path=endpoint, timeout_in_seconds=15)
        try:
            ctx = src.get_x509_context()
            svid = ctx.default_svid
            expect(str(svid.spiffe_id) == st["py-bot"]["spiffe_id"], f"got {svid.spiffe_id}")
            expect(len(ctx.x509_svids) == 1, f"{len(ctx.x509_svids)} SVIDs (only py-bot matches this process)")
            bundle = src.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
            expect(bundle is not None and bundle.x509_authorities, "no X.509 bundle for the trust domain")
            verify_chain(svid, bundle.x509_authorities)
            pub = svid.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)
            leaf_pub = svid.leaf.public_key().public_bytes(serialization.Encoding.DER,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
            expect(pub == leaf_pub, "the private key does not match the leaf certificate")
            expect(isinstance(svid.private_key, ec.EllipticCurvePrivateKey), "the key is not EC")
            life = (svid.leaf.not_valid_after_utc - svid.leaf.not_valid_before_utc).total_seconds()
            expect(life <= SVID_TTL + 1, f"the SVID lives {life} s, more than the {SVID_TTL} s asked for")
            # Rotation: a new certificate is streamed to the source at half the lifetime, before the old expires.
            first = svid.leaf
            newer = wait_until(
                lambda: (lambda s: s if s.leaf.serial_number != first.serial_number else None)(
                    src.get_x509_context().default_svid), SVID_TTL + 5, "a rotated SVID")
            expect(time.time() < first.not_valid_after_utc.timestamp(), "rotated only after the old SVID expired")
            verify_chain(newer, bundle.x509_authorities)
            expect(str(newer.spiffe_id) == st["py-bot"]["spiffe_id"], "the rotated SVID has another SPIFFE ID")
        finally:
            src.close()

    def jwt_source():
        client = WorkloadApiClient(endpoint)
        try:
            audience = "https://billing.example"
            svid = client.fetch_jwt_svid(audience={audience})
            expect(str(svid.spiffe_id) == st["py-bot"]["spiffe_id"], f"got {svid.spiffe_id}")
            header = pyjwt.get_unverified_header(svid.token)
            expect(header.get("alg") == "ES256" and header.get("kid"), f"header {header}")
            src = JwtSource(socket_path=endpoint, timeout_in_seconds=15)
            try:
                bundle = src.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
                key = bundle.get_jwt_authority(header["kid"])
                expect(key is not None, "the signing key is not in the JWT bundle")
                claims = pyjwt.decode(svid.token, key=key, algorithms=["ES256"], audience=audience)
                expect(claims["sub"] == st["py-bot"]["spiffe_id"], f"sub {claims['sub']}")
            finally:
                src.close()
            validated = client.validate_jwt_svid(svid.token, audience)
            expect(str(validated.spiffe_id) == st["py-bot"]["spiffe_id"], "ValidateJWTSVID: another SPIFFE ID")
            head, payload, sig = svid.token.split(".")
            forged = ".".join([head, payload, b64url(b"\x01" * 64)])
            try:
                client.validate_jwt_svid(forged, audience)
                raise AssertionError("a forged JWT-SVID validated")
            except AssertionError:
                raise
            except Exception:  # noqa: BLE001 - py-spiffe raises its own error types
                pass
            try:
                client.validate_jwt_svid(svid.token, "https://other.example")
                raise AssertionError("a JWT-SVID validated for another audience")
            except AssertionError:
                raise
            except Exception:  # noqa: BLE001
                pass
            st["jwt-for-token"] = client.fetch_jwt_svid(audience={server.base + "/v1/token"}).token
        finally:
            client.close()

    def grpc_call(metadata):
        from spiffe._proto import workload_pb2, workload_pb2_grpc
        with grpc.insecure_channel(endpoint) as ch:
            stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(ch)
            try:
                stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=["x"]), metadata=metadata, timeout=10)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

    def no_header():
        code = grpc_call(())
        expect(code == grpc.StatusCode.INVALID_ARGUMENT, f"without the header: {code}")
        code = grpc_call((("workload.spiffe.io", "true"),))
        expect(code == grpc.StatusCode.OK, f"with the header: {code}")

    def unmatched_binary():
        code = ("from spiffe import WorkloadApiClient\n"
                "c = WorkloadApiClient('" + endpoint + "')\n"
                "try:\n"
                "    c.fetch_x509_svid(timeout=10); print('GOT')\n"
                "except Exception as e:\n"
                "    print('REFUSED', type(e).__name__, e)\n"
                "try:\n"
                "    c.fetch_jwt_svid(audience={'x'}); print('GOT-JWT')\n"
                "except Exception as e:\n"
                "    print('REFUSED-JWT', type(e).__name__, e)\n"
                # The node tells its handlers which connection a call came on in a header of its own; a client
                # sending it, naming the attested connections held open below, is still attested as itself.
                "import grpc\n"
                "from spiffe._proto import workload_pb2, workload_pb2_grpc\n"
                "with grpc.insecure_channel('" + endpoint + "') as ch:\n"
                "    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(ch)\n"
                "    for i in range(1, 65):\n"
                "        try:\n"
                "            stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=['x']), timeout=10,\n"
                "                metadata=(('workload.spiffe.io', 'true'), ('warden-peer-connection', str(i))))\n"
                "            print('SPOOFED', i)\n"
                "        except grpc.RpcError as e:\n"
                "            if e.code() != grpc.StatusCode.PERMISSION_DENIED: print('ODD', i, e.code())\n")
        held = X509Source(socket_path=endpoint, timeout_in_seconds=15)  # attested connections for the spoofer to name
        try:
            out = run_python_as_copy(workdir, code, {})
        finally:
            held.close()
        expect("SPOOFED" not in out.stdout and "ODD" not in out.stdout,
               f"a spoofed connection header was honoured: {out.stdout.strip()[-500:]}")
        expect("REFUSED " in out.stdout and "REFUSED-JWT" in out.stdout,
               f"a binary matching no manifest: {out.stdout.strip()} {out.stderr.strip()[-300:]}")
        expect("PERMISSION_DENIED" in out.stdout or "no identity issued" in out.stdout,
               f"not refused as PermissionDenied: {out.stdout.strip()}")

    def pid_reuse():
        if os.geteuid() != 0 or not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
            print("skipped pid reuse: needs root to set /proc/sys/kernel/ns_last_pid", flush=True)
            return
        result = os.path.join(workdir, "attack.result")
        pidfile = os.path.join(workdir, "attack.pid")
        go = os.path.join(workdir, "attack.go")
        attacker = subprocess.Popen([sys.executable, os.path.join(HERE, "node_pid_reuse.py"), sock, pidfile, go,
                                     result], stdin=subprocess.DEVNULL)
        status = attacker.wait(timeout=30)  # reaped: its pid is free for reuse
        expect(status == 0, f"the attacker's parent exited with {status}")
        with open(pidfile) as f:
            pid = int(f.read().strip())
        # Control: a request sent while the connecting process lived was attested as what it was (py-bot).
        wait_until(lambda: os.path.exists(result + ".control"), 20, "the control request")
        with open(result + ".control") as f:
            control = f.read()
        expect("grpc-status 0" in control and st["py-bot"]["spiffe_id"] in control,
               f"the control request (the process alive) was not served as py-bot: {control[:300]}")
        squatter = None
        for _ in range(200):
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
            p = subprocess.Popen([sleeper, "30"])
            if p.pid == pid:
                squatter = p
                break
            p.kill()
            p.wait()
        try:
            expect(squatter is not None, f"could not start the attested binary with pid {pid}")
            with open(go, "w") as f:
                f.write("go")
            wait_until(lambda: os.path.exists(result), 20, "the attack's result")
            with open(result) as f:
                text = f.read()
            expect(st["sleeper"]["spiffe_id"] not in text, f"the attack got the sleeper's SVID: {text[:300]}")
            expect("grpc-status 7" in text, f"expected PERMISSION_DENIED (7): {text[:300]}")
        finally:
            if squatter is not None:
                squatter.kill()
                squatter.wait()

    def quarantine():
        r = w.admin("POST", "/v1/admin/agents/py-bot/quarantine", {"reason": "node interop"})
        expect(r.status_code == 200, f"quarantine: {describe(r)}")
        client = WorkloadApiClient(endpoint)
        try:
            def refused():
                try:
                    client.fetch_x509_svid(timeout=5)
                    return False
                except Exception:  # noqa: BLE001
                    return True
            wait_until(refused, 10, "the quarantined agent to lose its SVIDs")
            r = w.admin("POST", "/v1/admin/agents/py-bot/activate", {"reason": "node interop done"})
            expect(r.status_code == 200, f"activate: {describe(r)}")
            wait_until(lambda: not refused(), 10, "the reactivated agent to get SVIDs again")
        finally:
            client.close()

    def no_join_token_enrollment():
        from interop_common import enroll_request
        # py-bot's join token was retired when its node first attested it.
        r = enroll_request(w, new_key(), st["py-bot"]["join_token"], st["py-bot"]["manifest_digest"])
        expect(r.status_code == 400 and "unknown, used or expired" in r.text, f"py-bot's join token: {describe(r)}")
        # An agent whose node has not attested it yet: its join token is live but cannot enroll it.
        m = {"name": "later-bot", "owner": "ops@example.com", "node": "node-z", "selectors": ["unix:uid:4242"]}
        reg = w.admin("POST", "/v1/admin/agents", m)
        expect(reg.status_code == 201, f"register later-bot: {describe(reg)}")
        r = enroll_request(w, new_key(), reg.json()["join_token"], reg.json()["manifest_digest"])
        expect(r.status_code == 400 and "node-z" in r.text, f"enrolling a node-attested agent: {describe(r)}")

    def jwt_spiffe_token():
        token_endpoint = server.base + "/v1/token"
        svid = st.need("jwt-for-token")
        key = new_key()
        form = {"grant_type": "client_credentials", "client_assertion_type": SPIFFE_ASSERTION_TYPE,
                "client_assertion": svid}
        r = w.post("/v1/token", data=form)
        expect(r.status_code in (400, 401), f"without a DPoP proof: {describe(r)}")
        r = w.post("/v1/token", data=form, headers={"DPoP": dpop_proof(key, "POST", token_endpoint)})
        expect(r.status_code == 200, f"jwt-spiffe token: {describe(r)}")
        body = r.json()
        expect(body.get("token_type") == "DPoP", f"token_type {body.get('token_type')}")
        access = body["access_token"]
        # The JWT-SVID is a single-use client assertion: the same one again, with a fresh proof, is refused.
        r = w.post("/v1/token", data=form, headers={"DPoP": dpop_proof(new_key(), "POST", token_endpoint)})
        expect(r.status_code in (400, 401) and "replay" in r.text, f"a replayed JWT-SVID: {describe(r)}")
        r = w.get("/v1/whoami", headers={"Authorization": "DPoP " + access,
                                         "DPoP": dpop_proof(key, "GET", server.base + "/v1/whoami", access)})
        expect(r.status_code == 200 and r.json().get("spiffe_id") == st["py-bot"]["spiffe_id"],
               f"whoami with the token: {describe(r)}")
        # Another key's proof with the token: refused (the token is bound to the key that got it).
        other = new_key()
        r = w.get("/v1/whoami", headers={"Authorization": "DPoP " + access,
                                         "DPoP": dpop_proof(other, "GET", server.base + "/v1/whoami", access)})
        expect(r.status_code == 401, f"the token with another key's proof: {describe(r)}")
        # An access token is not a JWT-SVID (typ at+jwt), though the same keys sign both.
        form2 = dict(form, client_assertion=access)
        r = w.post("/v1/token", data=form2, headers={"DPoP": dpop_proof(key, "POST", token_endpoint)})
        expect(r.status_code in (400, 401), f"an access token as a JWT-SVID: {describe(r)}")

    try:
        ok = run.check("start: serve, register the node and its agents, warden node enrolls and listens", start)
        if ok:
            run.check("py-spiffe X509Source: SVID, chain to the bundle, key, rotation streamed", x509_source)
            run.check("py-spiffe JwtSource/WorkloadApiClient: JWT-SVID, bundle, ValidateJWTSVID, forgeries",
                      jwt_source)
            run.check("the workload.spiffe.io header is required (InvalidArgument without it)", no_header)
            run.check("a binary matching no manifest gets nothing, even naming attested connections", unmatched_binary)
            run.check("a connection whose process died gets nothing when an attested binary takes its pid",
                      pid_reuse)
            run.check("quarantine stops issuance at the next sync; activation restores it", quarantine)
            run.check("a node-attested agent cannot enroll with its join token", no_join_token_enrollment)
            run.check("JWT-SVID as a jwt-spiffe client assertion with DPoP; typ confusion refused", jwt_spiffe_token)
    finally:
        terminate(node)
        node_log.close()
        server.stop()
    return run.summary()


if __name__ == "__main__":
    sys.exit(main())
