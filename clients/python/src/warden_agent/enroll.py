"""Enrollment: an agent proves its key with a one-time join token and its manifest's digest (`/v1/enroll`)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from . import _jose
from .auth import WardenAuth, WardenError, _json_or_none


@dataclass(frozen=True)
class Enrollment:
    agent_id: str
    spiffe_id: str
    state: str
    issuer: str
    token_endpoint: str


def enroll(
    server: str,
    join_token: str,
    key: ec.EllipticCurvePrivateKey,
    manifest_digest: str,
    *,
    binary_sha256: str | None = None,
    timeout: float = 10.0,
) -> Enrollment:
    """Enrolls `key` for the agent the join token was issued to (the operator's `warden agent register` printed
    both the token and the manifest digest). Raises WardenError when Warden refuses (a used or expired join token, a
    digest that does not match the manifest)."""
    import httpx

    server = server.rstrip("/")
    url = server + "/v1/enroll"
    attestation = {"manifest_digest": manifest_digest}
    if binary_sha256 is not None:
        attestation["binary_sha256"] = binary_sha256
    body = {"join_token": join_token, "jwk": _jose.public_jwk(key), "attestation": attestation}
    # A throwaway WardenAuth only for its proofs and the server's nonce.
    signer = WardenAuth(server, key, spiffe_id="")
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        for _ in range(2):
            r = client.post(url, json=body, headers={"DPoP": signer.proof("POST", url)})
            data = _json_or_none(r)
            error = data.get("error", "") if isinstance(data, dict) else ""
            if r.status_code in (400, 401) and error == "use_dpop_nonce" and signer.note_nonce(url, r.headers):
                continue
            if r.status_code != 200 or not isinstance(data, dict):
                description = data.get("error_description", "") if isinstance(data, dict) else ""
                raise WardenError(r.status_code, error or "invalid_response", str(description)[:300])
            return Enrollment(
                agent_id=str(data.get("agent_id", "")),
                spiffe_id=str(data.get("spiffe_id", "")),
                state=str(data.get("state", "")),
                issuer=str(data.get("issuer", server)),
                token_endpoint=str(data.get("token_endpoint", server + "/v1/token")),
            )
    raise WardenError(400, "use_dpop_nonce", "the enrollment endpoint asked for a nonce twice")
