"""Interop test of Warden's identity endpoints with clients written by others.

    python identity_interop.py WARDEN_BIN WORKDIR

Starts `WARDEN_BIN serve --data WORKDIR/data --listen 127.0.0.1:PORT`, then drives enrollment, the token endpoint
(RFC 7523 client assertions, RFC 9449 DPoP, RFC 8693 token exchange), /v1/whoami, /v1/svid, revocation and a
restart with independent implementations: joserfc (JWS/JWK: proofs, assertions, thumbprints), PyJWT (verifying
access tokens against the published JWKS), cryptography (keys, CSR) and requests, plus the openssl CLI for the SVID.

Prints one line per check ("ok NAME" or "FAIL NAME: detail") and at the end "N passed, M failed"; exits 1 when any
check failed. Needs: joserfc, pyjwt[crypto], cryptography, requests, and `openssl` on PATH.
"""
import hashlib
import hmac
import os
import re
import secrets
import subprocess
import sys
import time

from interop_common import (ASSERTION_TYPE, Agent, HTTP_TIMEOUT, Run, Server, State, Warden, b64url, b64url_json,
                            client_assertion, describe, dpop_proof, enroll_request, expect, free_port, get_token,
                            keep_loopback_off_proxy, new_key, register, register_and_enroll, token_request)

keep_loopback_off_proxy()

import jwt as pyjwt  # noqa: E402  (PyJWT)
import requests  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def unverified_claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


# ---------------------------------------------------------------------------------------------------------------
# Clients (Server, Warden, Agent, keys, DPoP proofs, client assertions, enrollment and token requests: interop_common)








def whoami(w: Warden, key: ECKey, token: str, proof=None, method="GET", htu=None):
    if proof is None:
        proof = dpop_proof(key, method, htu or (w.base + "/v1/whoami"), access_token=token)
    return w.get("/v1/whoami", headers={"Authorization": "DPoP " + token, "DPoP": proof})


def verify_with_jwks(w: Warden, token: str, audience: str) -> dict:
    """Verifies an access token with PyJWT against the JWKS the server publishes (a fresh, uncached client)."""
    client = pyjwt.PyJWKClient(w.base + "/.well-known/jwks.json", cache_keys=False, cache_jwk_set=False,
                               timeout=HTTP_TIMEOUT)
    signing_key = client.get_signing_key_from_jwt(token)
    return pyjwt.decode(token, signing_key.key, algorithms=["ES256"], audience=audience, issuer=w.base,
                        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})


def expect_401(r, what: str, error=None):
    expect(r.status_code == 401, f"{what}: expected 401, got {describe(r)}")
    if error is not None:
        www = r.headers.get("WWW-Authenticate", "")
        expect(www.lower().startswith("dpop") and f'error="{error}"' in www,
               f"{what}: expected WWW-Authenticate: DPoP error=\"{error}\", got {www!r}")


# ---------------------------------------------------------------------------------------------------------------
# The checks


def main(argv) -> int:
    if len(argv) != 3:
        print("usage: identity_interop.py WARDEN_BIN WORKDIR", file=sys.stderr)
        return 2
    binary, workdir = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    os.makedirs(workdir, exist_ok=True)
    run = Run()
    server = Server(binary, workdir, free_port(), free_port())
    w = Warden(server)
    suffix = secrets.token_hex(3)  # unique agent names, so that a reused WORKDIR still works
    st = State()  # state shared between checks
    need = st.need

    a = Agent(f"support-bot-{suffix}", {
        "name": f"support-bot-{suffix}", "owner": "a@example.com", "roles": ["support"],
        "peers": [f"kb-agent-{suffix}"], "routes": ["tickets"], "tools": ["tickets/read"]})
    b = Agent(f"kb-agent-{suffix}", {
        "name": f"kb-agent-{suffix}", "owner": "b@example.com", "roles": ["kb"], "peers": [],
        "routes": ["tickets"], "tools": ["tickets/read", "kb/search"]})
    real_binary = hashlib.sha256(b"the real agent binary").hexdigest()
    c = Agent(f"attested-bot-{suffix}", {
        "name": f"attested-bot-{suffix}", "owner": "c@example.com", "roles": ["batch"], "peers": [],
        "routes": [], "tools": [], "binary_sha256": real_binary})
    d = Agent(f"steady-bot-{suffix}", {
        "name": f"steady-bot-{suffix}", "owner": "d@example.com", "roles": ["reports"], "peers": [],
        "routes": ["reports"], "tools": []})

    try:
        if not run.check("server-start", server.start):
            return run.summary()

        # 1
        def metadata():
            r = w.get("/.well-known/oauth-authorization-server")
            expect(r.status_code == 200, f"expected 200, got {describe(r)}")
            m = r.json()
            expect(m.get("issuer") == w.base, f"issuer {m.get('issuer')!r} != {w.base!r}")
            expect(m.get("token_endpoint") == w.base + "/v1/token", f"token_endpoint is {m.get('token_endpoint')!r}")
            expect("ES256" in (m.get("dpop_signing_alg_values_supported") or []),
                   f"dpop_signing_alg_values_supported is {m.get('dpop_signing_alg_values_supported')!r}")
            grants = m.get("grant_types_supported") or []
            for g in ("client_credentials", TOKEN_EXCHANGE):
                expect(g in grants, f"grant_types_supported {grants!r} lacks {g}")
        run.check("metadata", metadata)

        # 2
        def enroll():
            register_and_enroll(w, a)
            st["a"] = a
        run.check("register-enroll", enroll)

        # 3
        def token():
            agent = need("a")
            t = get_token(w, agent)
            expect(t.get("token_type") == "DPoP", f"token_type is {t.get('token_type')!r}, not DPoP")
            expect(isinstance(t.get("expires_in"), int) and 0 < t["expires_in"] <= 300,
                   f"expires_in is {t.get('expires_in')!r}, not in 1..300")
            expect(isinstance(t.get("access_token"), str) and t["access_token"].count(".") == 2,
                   "access_token is not a compact JWS")
            st["tok_a"] = t["access_token"]
        run.check("token-client-credentials", token)

        # 4
        def jwks_verify():
            agent, tok = need("a", "tok_a")
            r = w.get("/.well-known/jwks.json")
            expect(r.status_code == 200, f"JWKS: expected 200, got {describe(r)}")
            keys = r.json().get("keys") or []
            expect(keys, "the JWKS has no keys")
            for k in keys:
                expect(k.get("kid") and k.get("use"), f"JWKS key without kid or use: {k}")
            header = pyjwt.get_unverified_header(tok)
            expect(header.get("typ") == "at+jwt", f"token header typ is {header.get('typ')!r}, not at+jwt")
            expect(header.get("alg") == "ES256", f"token header alg is {header.get('alg')!r}")
            expect(header.get("kid") in {k["kid"] for k in keys}, f"token kid {header.get('kid')!r} not in the JWKS")
            claims = verify_with_jwks(w, tok, audience=w.base)
            expect(claims["sub"] == agent.spiffe_id, f"sub {claims['sub']!r} != {agent.spiffe_id!r}")
            jkt = (claims.get("cnf") or {}).get("jkt")
            expect(jkt == agent.key.thumbprint(), f"cnf.jkt {jkt!r} != RFC 7638 thumbprint {agent.key.thumbprint()!r}")
            expect(claims["exp"] - claims["iat"] <= 300, f"lifetime exp-iat = {claims['exp'] - claims['iat']} > 300")
            st["claims_a"] = claims
        run.check("jwks-verify-token", jwks_verify)

        # 5
        def who():
            agent, tok = need("a", "tok_a")
            r = whoami(w, agent.key, tok)
            expect(r.status_code == 200, f"expected 200, got {describe(r)}")
            body = r.json()
            expect(body.get("spiffe_id") == agent.spiffe_id, f"spiffe_id {body.get('spiffe_id')!r} != {agent.spiffe_id!r}")
            expect(body.get("agent_id") == agent.registration["agent_id"], f"agent_id {body.get('agent_id')!r}")
        run.check("whoami", who)

        # 6
        def replay():
            agent, tok = need("a", "tok_a")
            proof = dpop_proof(agent.key, "GET", w.base + "/v1/whoami", access_token=tok)
            first = whoami(w, agent.key, tok, proof=proof)
            expect(first.status_code == 200, f"first use: expected 200, got {describe(first)}")
            second = whoami(w, agent.key, tok, proof=proof)
            expect_401(second, "replayed proof", error="invalid_dpop_proof")
        run.check("dpop-replay-refused", replay)

        # 7
        def other_key():
            _, tok = need("a", "tok_a")
            thief = new_key()
            expect_401(whoami(w, thief, tok), "proof from another key")
        run.check("dpop-other-key-refused", other_key)

        # 8
        def forged(alg):
            def fn():
                agent, tok = need("a", "tok_a")
                header = pyjwt.get_unverified_header(tok)
                claims = unverified_claims(tok)
                if alg == "none":
                    h = {"alg": "none", "typ": "at+jwt", "kid": header.get("kid")}
                    forged_tok = b64url_json(h) + "." + b64url_json(claims) + "."
                else:
                    # The classic confusion: HMAC keyed with the server's public key (its PEM, as a library that
                    # takes "the key" might use it).
                    jwks = w.get("/.well-known/jwks.json").json()
                    jwk = next(k for k in jwks["keys"] if k["kid"] == header.get("kid"))
                    pem = pyjwt.PyJWK(jwk).key.public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                    h = {"alg": "HS256", "typ": "at+jwt", "kid": header.get("kid")}
                    signing_input = b64url_json(h) + "." + b64url_json(claims)
                    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
                    forged_tok = signing_input + "." + b64url(mac)
                expect_401(whoami(w, agent.key, forged_tok), f"alg {alg} token", error="invalid_token")
            return fn
        run.check("alg-none-token-refused", forged("none"))
        run.check("hs256-token-refused", forged("HS256"))

        # 9
        def wrong_htu():
            agent, tok = need("a", "tok_a")
            r = whoami(w, agent.key, tok, htu=w.base + "/v1/whoami/other")
            expect_401(r, "proof with htu .../v1/whoami/other")
            other_origin = f"http://127.0.0.1:{server.port + 1 if server.port < 65535 else server.port - 1}/v1/whoami"
            expect_401(whoami(w, agent.key, tok, htu=other_origin), f"proof with htu {other_origin}")
        run.check("dpop-wrong-htu-refused", wrong_htu)

        def wrong_htm():
            agent, tok = need("a", "tok_a")
            expect_401(whoami(w, agent.key, tok, method="POST"), "GET with a proof for htm POST")
        run.check("dpop-wrong-htm-refused", wrong_htm)

        # 10
        def svid():
            agent, tok = need("a", "tok_a")
            svid_key = ec.generate_private_key(ec.SECP256R1())
            csr = (x509.CertificateSigningRequestBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent.name)]))
                   .sign(svid_key, hashes.SHA256()))
            csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
            proof = dpop_proof(agent.key, "POST", w.base + "/v1/svid", access_token=tok)
            asked = int(time.time())
            r = w.post("/v1/svid", json={"csr": csr_pem}, headers={"Authorization": "DPoP " + tok, "DPoP": proof})
            expect(r.status_code == 200, f"expected 200, got {describe(r)}")
            body = r.json()
            expect(body.get("spiffe_id") == agent.spiffe_id, f"spiffe_id {body.get('spiffe_id')!r}")
            svid_path = os.path.join(workdir, "svid.pem")
            bundle_path = os.path.join(workdir, "bundle.pem")
            with open(svid_path, "w") as f:
                f.write(body["svid"])
            with open(bundle_path, "w") as f:
                f.write(body["bundle"])
            chain = x509.load_pem_x509_certificates(body["svid"].encode())
            expect(len(chain) == 2, f"svid holds {len(chain)} certificates, expected leaf + intermediate")
            v = subprocess.run(["openssl", "verify", "-CAfile", bundle_path, "-untrusted", svid_path, svid_path],
                               capture_output=True, text=True, timeout=30)
            expect(v.returncode == 0, f"openssl verify exited {v.returncode}: {v.stdout.strip()} {v.stderr.strip()}")
            t = subprocess.run(["openssl", "x509", "-in", svid_path, "-noout", "-text"],
                               capture_output=True, text=True, timeout=30)
            expect(t.returncode == 0, f"openssl x509 exited {t.returncode}: {t.stderr.strip()}")
            text = t.stdout
            uris = re.findall(r"URI:(spiffe://[^\s,]+)", text)
            expect(len(uris) == 1, f"expected exactly one URI:spiffe:// SAN, found {uris}")
            expect(uris[0] == agent.spiffe_id, f"SAN {uris[0]!r} != {agent.spiffe_id!r}")
            expect("CA:FALSE" in text, "no CA:FALSE basic constraint")
            ku = re.search(r"X509v3 Key Usage:\s*(critical)?\s*\n\s*([^\n]*)", text)
            expect(ku is not None, "no Key Usage extension")
            expect(ku.group(1) == "critical", "Key Usage is not critical")
            expect("Digital Signature" in ku.group(2), f"Key Usage is {ku.group(2).strip()!r}")
            leaf = chain[0]
            expect(leaf.public_key().public_numbers() == svid_key.public_key().public_numbers(),
                   "the SVID does not certify the CSR's key")
            nb, na = leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp()
            # Validity: expires at most 1 h after issuance (a notBefore backdated for clock skew is tolerated, up to
            # 5 min).
            expect(na - asked <= 3600 + 5, f"notAfter is {na - asked:.0f} s after the request (> 1 h)")
            expect(nb >= asked - 300, f"notBefore is backdated {asked - nb:.0f} s (> 5 min)")
            expect(abs(int(body.get("expires_at", 0)) - na) <= 1,
                   f"expires_at {body.get('expires_at')} != notAfter {int(na)}")
            st["svid_validity"] = int(na - nb)
            svid_key_path = os.path.join(workdir, "svid.key")
            with open(svid_key_path, "wb") as f:
                f.write(svid_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            os.chmod(svid_key_path, 0o600)
            st["svid_files"] = (svid_path, svid_key_path, bundle_path, leaf)
        run.check("svid-openssl", svid)

        # 10b: RFC 8705 certificate-bound tokens on the mutual-TLS listener, with requests and with curl.
        def mtls():
            agent = need("a")
            svid_path, key_path, bundle_path, leaf = need("svid_files")
            tls = server.tls_base
            cert = (svid_path, key_path)
            r = requests.post(tls + "/v1/token", data={"grant_type": "client_credentials"}, cert=cert,
                              verify=bundle_path, timeout=HTTP_TIMEOUT)
            expect(r.status_code == 200, f"mTLS token request: expected 200, got {describe(r)}")
            tok = r.json()["access_token"]
            claims = verify_with_jwks(w, tok, audience=w.base)
            x5t = b64url(hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).digest())
            expect(claims.get("cnf") == {"x5t#S256": x5t}, f"cnf {claims.get('cnf')!r}, expected x5t#S256 {x5t}")
            expect(claims["sub"] == agent.spiffe_id, f"sub {claims['sub']!r}")
            r = requests.get(tls + "/v1/whoami", headers={"Authorization": "Bearer " + tok}, cert=cert,
                             verify=bundle_path, timeout=HTTP_TIMEOUT)
            expect(r.status_code == 200, f"whoami with the certificate: expected 200, got {describe(r)}")
            expect(r.json().get("spiffe_id") == agent.spiffe_id, f"whoami {r.text[:200]}")
            c = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", bundle_path, "--cert", svid_path,
                                "--key", key_path, "-H", "Authorization: Bearer " + tok, tls + "/v1/whoami"],
                               capture_output=True, text=True, timeout=30)
            expect(c.returncode == 0 and agent.spiffe_id in c.stdout, f"curl whoami: {c.returncode} {c.stdout[:200]} {c.stderr[:200]}")
            # The stolen certificate-bound token without the certificate, or as a DPoP token, is refused.
            r = requests.get(tls + "/v1/whoami", headers={"Authorization": "Bearer " + tok}, verify=bundle_path,
                             timeout=HTTP_TIMEOUT)
            expect_401(r, "certificate-bound token without the certificate", "invalid_token")
            r = requests.get(w.base + "/v1/whoami", headers={"Authorization": "Bearer " + tok}, timeout=HTTP_TIMEOUT)
            expect_401(r, "certificate-bound token on the plain listener", "invalid_token")
            # A token request over TLS without a client certificate and without DPoP is refused.
            r = requests.post(tls + "/v1/token", data={"grant_type": "client_credentials"}, verify=bundle_path,
                              timeout=HTTP_TIMEOUT)
            expect(r.status_code in (400, 401), f"token without certificate or DPoP: {describe(r)}")
            meta = requests.get(w.base + "/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT).json()
            expect(meta.get("tls_client_certificate_bound_access_tokens") is True, "metadata lacks RFC 8705 flag")
            expect(meta.get("mtls_endpoint_aliases", {}).get("token_endpoint") == tls + "/v1/token",
                   f"mtls_endpoint_aliases {meta.get('mtls_endpoint_aliases')!r}")
        run.check("mtls-certificate-bound-token", mtls)

        # 11
        def attestation():
            reg = register(w, c)
            key = new_key()
            wrong = hashlib.sha256(b"a tampered binary").hexdigest()
            r = enroll_request(w, key, reg["join_token"], reg["manifest_digest"], binary_sha256=wrong)
            expect(r.status_code == 403, f"wrong binary hash: expected 403, got {describe(r)}")
            expect(r.json().get("error") == "attestation_failed", f"wrong binary hash: {describe(r)}")
            again = enroll_request(w, key, reg["join_token"], reg["manifest_digest"], binary_sha256=real_binary)
            expect(again.status_code == 400, f"reused join token: expected 400, got {describe(again)}")
            expect(again.json().get("error") == "invalid_grant", f"reused join token: {describe(again)}")
            ev = w.admin("GET", f"/v1/admin/agents/{c.name}/events")
            expect(ev.status_code == 200, f"events: expected 200, got {describe(ev)}")
            kinds = [e.get("kind") for e in ev.json().get("events", [])]
            expect("attestation_failed" in kinds, f"events {kinds} lack attestation_failed")
            ag = w.admin("GET", f"/v1/admin/agents/{c.name}")
            expect(ag.status_code == 200 and ag.json().get("state") == "pending",
                   f"agent after failed attestation: {describe(ag)}")
        run.check("attestation-mismatch", attestation)

        # 12
        def exchange():
            agent_a = need("a")
            register_and_enroll(w, b)
            st["b"] = b
            ta = get_token(w, agent_a, audience=b.spiffe_id)["access_token"]
            claims_a = verify_with_jwks(w, ta, audience=b.spiffe_id)
            form = {"grant_type": TOKEN_EXCHANGE, "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": client_assertion(b.key, b.spiffe_id, w.base + "/v1/token"),
                    "subject_token": ta, "subject_token_type": ACCESS_TOKEN_TYPE}
            proof = dpop_proof(b.key, "POST", w.base + "/v1/token")
            r = w.post("/v1/token", data=form, headers={"DPoP": proof})
            expect(r.status_code == 200, f"exchange: expected 200, got {describe(r)}")
            body = r.json()
            expect(body.get("issued_token_type") == ACCESS_TOKEN_TYPE,
                   f"issued_token_type is {body.get('issued_token_type')!r}")
            expect(body.get("token_type") == "DPoP", f"token_type is {body.get('token_type')!r}")
            tx = body["access_token"]
            aud = unverified_claims(tx).get("aud")
            claims = verify_with_jwks(w, tx, audience=aud if isinstance(aud, str) else (aud or [w.base])[0])
            expect(claims["sub"] == agent_a.spiffe_id, f"sub {claims['sub']!r} != A {agent_a.spiffe_id!r}")
            expect((claims.get("act") or {}).get("sub") == b.spiffe_id,
                   f"act {claims.get('act')!r}, expected sub {b.spiffe_id!r}")
            expect(claims["exp"] <= claims_a["exp"], f"exp {claims['exp']} > subject token's exp {claims_a['exp']}")
            expect((claims.get("cnf") or {}).get("jkt") == b.key.thumbprint(), "cnf.jkt is not B's key")
            r = whoami(w, b.key, tx)
            expect(r.status_code == 200, f"whoami with the exchanged token: expected 200, got {describe(r)}")
        run.check("token-exchange", exchange)

        # 13
        def revoke_jti():
            agent = need("a")
            tok = get_token(w, agent)["access_token"]
            r = whoami(w, agent.key, tok)
            expect(r.status_code == 200, f"before revocation: expected 200, got {describe(r)}")
            jti = unverified_claims(tok)["jti"]
            r = w.admin("POST", "/v1/admin/revocations", {"jti": jti, "reason": "interop test"})
            expect(r.status_code == 200, f"revocation: expected 200, got {describe(r)}")
            expect_401(whoami(w, agent.key, tok), "revoked token", error="invalid_token")
            # The agent's other tokens are unaffected.
            r = whoami(w, agent.key, st["tok_a"])
            expect(r.status_code == 200, f"another token of the agent: expected 200, got {describe(r)}")
        run.check("token-revocation", revoke_jti)

        # 14
        def revoke_agent():
            agent, tok = need("a", "tok_a")
            r = whoami(w, agent.key, tok)
            expect(r.status_code == 200, f"before revocation: expected 200, got {describe(r)}")
            r = w.admin("POST", f"/v1/admin/agents/{agent.name}/revoke", {"reason": "interop test"})
            expect(r.status_code == 200 and r.json().get("state") == "revoked", f"revoke: {describe(r)}")
            st["a_revoked"] = True
            r = token_request(w, agent)
            expect(r.status_code in (400, 401), f"token for a revoked agent: expected 400/401, got {describe(r)}")
            expect(r.json().get("error") in ("unauthorized_client", "invalid_client", "invalid_grant"),
                   f"token for a revoked agent: {describe(r)}")
            expect(unverified_claims(tok)["exp"] > time.time(), "the old token has expired: the check is moot")
            expect_401(whoami(w, agent.key, tok), "old token of a revoked agent", error="invalid_token")
        run.check("agent-revocation", revoke_agent)

        # 15
        def before_restart():
            register_and_enroll(w, d)
            st["d"] = d
            keep = get_token(w, d)["access_token"]
            doomed = get_token(w, d)["access_token"]
            for t in (keep, doomed):
                r = whoami(w, d.key, t)
                expect(r.status_code == 200, f"whoami before restart: expected 200, got {describe(r)}")
            doomed_jti = unverified_claims(doomed)["jti"]
            r = w.admin("POST", "/v1/admin/revocations", {"jti": doomed_jti, "reason": "interop restart test"})
            expect(r.status_code == 200, f"revocation: expected 200, got {describe(r)}")
            expect_401(whoami(w, d.key, doomed), "revoked token before restart")
            st["d_keep"], st["d_doomed"] = keep, doomed
        run.check("restart-setup", before_restart)

        def restart():
            server.stop()
            server.start()  # same port: the issuer is the URL
        restarted = run.check("restart-server", restart)

        def still_revoked_agent():
            expect(restarted, "skipped: the server did not restart")
            agent = need("a")
            expect(st.get("a_revoked"), "skipped: the agent was not revoked before the restart")
            r = w.admin("GET", f"/v1/admin/agents/{agent.name}")
            expect(r.status_code == 200, f"expected 200, got {describe(r)}")
            expect(r.json().get("state") == "revoked", f"state is {r.json().get('state')!r} after restart")
            r = token_request(w, agent)
            expect(r.status_code in (400, 401), f"token after restart: expected 400/401, got {describe(r)}")
            expect_401(whoami(w, agent.key, st["tok_a"]), "old token of the revoked agent after restart")
        run.check("restart-agent-stays-revoked", still_revoked_agent)

        def still_revoked_jti():
            expect(restarted, "skipped: the server did not restart")
            agent, doomed = need("d", "d_doomed")
            expect(unverified_claims(doomed)["exp"] > time.time(), "the revoked token has expired: the check is moot")
            expect_401(whoami(w, agent.key, doomed), "revoked jti after restart", error="invalid_token")
        run.check("restart-jti-stays-revoked", still_revoked_jti)

        def active_agent():
            expect(restarted, "skipped: the server did not restart")
            agent, keep = need("d", "d_keep")
            r = whoami(w, agent.key, keep)
            expect(r.status_code == 200, f"token from before the restart: expected 200, got {describe(r)}")
            t = get_token(w, agent)["access_token"]
            r = whoami(w, agent.key, t)
            expect(r.status_code == 200, f"new token after restart: expected 200, got {describe(r)}")
            expect(r.json().get("spiffe_id") == agent.spiffe_id, f"spiffe_id {r.json().get('spiffe_id')!r}")
            claims = verify_with_jwks(w, t, audience=w.base)
            expect(claims["cnf"]["jkt"] == agent.key.thumbprint(), "cnf.jkt is not the enrolled key's thumbprint")
        run.check("restart-active-agent-works", active_agent)

        def jwks_old_token():
            expect(restarted, "skipped: the server did not restart")
            agent, keep = need("d", "d_keep")
            claims = verify_with_jwks(w, keep, audience=w.base)
            expect(claims["sub"] == agent.spiffe_id, f"sub {claims['sub']!r}")
        run.check("restart-jwks-verifies-old-token", jwks_old_token)
    finally:
        server.stop()

    if "svid_validity" in st and st["svid_validity"] > 3600:
        print(f"note: the SVID's notAfter - notBefore is {st['svid_validity']} s (notBefore backdated)")
    return run.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
