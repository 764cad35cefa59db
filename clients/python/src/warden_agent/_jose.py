"""The little JOSE an agent needs: ES256 compact JWS, the public JWK of a P-256 key, and base64url.

Built on `cryptography` only. Keys are P-256 (`ec.SECP256R1`): the algorithm Warden accepts for agent keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode("utf-8")


def check_key(key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise TypeError("an agent key is a P-256 (secp256r1) private key")
    return key


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The key's public part as a JWK (RFC 7517): kty, crv, x, y."""
    numbers = check_key(key).public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), base64url."""
    canonical = _json({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]})
    return b64url(hashlib.sha256(canonical).digest())


def sign(header: Mapping[str, Any], claims: Mapping[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """A compact JWS over `claims` with ES256 (the signature is R || S, 64 bytes, as RFC 7518 §3.4 says)."""
    signing_input = (b64url(_json(header)) + "." + b64url(_json(claims))).encode("ascii")
    der = check_key(key).sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input.decode("ascii") + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url(SHA-256(ASCII(access_token)))."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())
