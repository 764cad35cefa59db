"""JOSE interop helper for the Swift tests, using joserfc (an independent implementation).

  jose_interop.py proof METHOD URL IAT ACCESS_TOKEN   -> {"proof": ..., "thumbprint": ...}
  jose_interop.py verify COMPACT_JWS JWK_JSON         -> {"valid": true|false, "claims": {...}}
"""
import hashlib
import json
import sys
import uuid

from interop_common import b64url
from joserfc import jws
from joserfc.jwk import ECKey


def proof(method: str, url: str, iat: int, token: str) -> None:
    key = ECKey.generate_key("P-256")
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": iat,
              "ath": b64url(hashlib.sha256(token.encode()).digest())}
    compact = jws.serialize_compact(header, json.dumps(claims).encode(), key)
    print(json.dumps({"proof": compact, "thumbprint": key.thumbprint()}))


def verify(compact: str, jwk_json: str) -> None:
    key = ECKey.import_key(json.loads(jwk_json))
    try:
        obj = jws.deserialize_compact(compact, key, algorithms=["ES256"])
        print(json.dumps({"valid": True, "claims": json.loads(obj.payload)}))
    except Exception as e:  # noqa: BLE001 - report any failure as invalid
        print(json.dumps({"valid": False, "error": type(e).__name__}))


if __name__ == "__main__":
    if sys.argv[1] == "proof":
        proof(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        verify(sys.argv[2], sys.argv[3])
