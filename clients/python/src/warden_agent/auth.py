"""WardenAuth: an agent's credentials for httpx (and httpx2) and requests.

For every request: a DPoP-bound access token (RFC 9449), got with an RFC 7523 client assertion signed by the agent's
key and renewed before it expires, and a fresh DPoP proof for that request's method and URL. A server nonce
(`use_dpop_nonce`) is taken and the request sent again once; a refused token (`invalid_token`: expired, or revoked by
Warden's risk engine) is renewed and the request sent again once. Safe to share between threads and between asyncio
tasks: one renewal at a time, the others wait for it and use its token.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Generator, Mapping
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec

from . import _jose

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class WardenError(Exception):
    """Warden refused: the HTTP status, the OAuth error code and its description."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"HTTP {status}: {error}" + (f": {description}" if description else ""))
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Token:
    value: str
    #: time.monotonic() when it expires.
    expires_at: float
    lifetime: float
    #: Counts renewals: a refused token is renewed only if it is still the current one.
    generation: int


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}".lower()


def htu(url: str) -> str:
    """The proof's `htu`: the request URL without query and fragment (RFC 9449 §4.2)."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, p.path or "/", "", ""))


def _challenge(headers: Mapping[str, str]) -> str:
    return headers.get("www-authenticate", "") or ""


class WardenAuth:
    """An enrolled agent's credentials. `server` is Warden's base URL (its issuer), `key` the agent's P-256 key and
    `spiffe_id` its identity (`spiffe://<trust domain>/agent/<name>`).

    Use it with requests (`requests.get(url, auth=auth)`), with httpx (`httpx.Client(auth=auth.httpx())`) or with the
    official MCP SDK (:func:`warden_agent.mcp.connect`).
    """

    def __init__(
        self,
        server: str,
        key: ec.EllipticCurvePrivateKey,
        spiffe_id: str,
        *,
        scope: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server.rstrip("/")
        self.key = _jose.check_key(key)
        self.spiffe_id = spiffe_id
        self.scope = scope
        self.timeout = timeout
        self._clock = clock
        self._jwk = _jose.public_jwk(key)
        self._lock = threading.Lock()
        self._nonce_lock = threading.Lock()
        self._nonces: dict[str, str] = {}
        self._token: Token | None = None
        self._generation = 0
        self._async_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = (
            weakref.WeakKeyDictionary()
        )
        #: Tokens obtained so far (renewals included), for observability and tests.
        self.tokens_issued = 0

    @property
    def token_endpoint(self) -> str:
        return self.server + "/v1/token"

    # -- proofs and nonces ---------------------------------------------------------------------------------------

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A DPoP proof for one request (with the server's latest nonce for that origin, when it sent one)."""
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "htm": method.upper(),
            "htu": htu(url),
            "iat": int(self._clock()),
        }
        if access_token is not None:
            claims["ath"] = _jose.access_token_hash(access_token)
        with self._nonce_lock:
            nonce = self._nonces.get(_origin(url))
        if nonce is not None:
            claims["nonce"] = nonce
        return _jose.sign({"typ": "dpop+jwt", "alg": "ES256", "jwk": self._jwk}, claims, self.key)

    def note_nonce(self, url: str, headers: Mapping[str, str]) -> bool:
        """Keeps the `DPoP-Nonce` a response carries (any response may); whether there was one."""
        nonce = headers.get("dpop-nonce")
        if not nonce or len(nonce) > 512:
            return False
        with self._nonce_lock:
            self._nonces[_origin(url)] = nonce
        return True

    def client_assertion(self) -> str:
        """An RFC 7523 `private_key_jwt` assertion for the token endpoint, valid for a minute."""
        now = int(self._clock())
        claims = {
            "iss": self.spiffe_id,
            "sub": self.spiffe_id,
            "aud": self.token_endpoint,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        return _jose.sign({"alg": "ES256", "typ": "JWT"}, claims, self.key)

    def _token_form(self) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        if self.scope:
            form["scope"] = self.scope
        return form

    # -- tokens ------------------------------------------------------------------------------------------------

    def _current(self, refused: Token | None = None) -> Token | None:
        """The token to use now: nil when there is none, it is due for renewal (its last quarter), or it is the one
        the server just refused."""
        t = self._token
        if t is None or (refused is not None and t.generation == refused.generation):
            return None
        remaining = t.expires_at - time.monotonic()
        if remaining <= max(1.0, t.lifetime * 0.25):
            return None
        return t

    def _accept(self, status: int, body: Any, headers: Mapping[str, str]) -> Token | None:
        """The token response: a new token, None for a nonce challenge (taken), or WardenError."""
        error = body.get("error", "") if isinstance(body, dict) else ""
        if status == 400 and error == "use_dpop_nonce" and self.note_nonce(self.token_endpoint, headers):
            return None
        self.note_nonce(self.token_endpoint, headers)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            description = body.get("error_description", "") if isinstance(body, dict) else ""
            raise WardenError(status, error or "invalid_response", str(description)[:300])
        if body.get("token_type", "").lower() != "dpop":
            raise WardenError(status, "invalid_response", "the token is not DPoP-bound")
        lifetime = float(body.get("expires_in", 60))
        self._generation += 1
        self.tokens_issued += 1
        self._token = Token(body["access_token"], time.monotonic() + lifetime, lifetime, self._generation)
        return self._token

    def token(self, refused: Token | None = None) -> Token:
        """A valid access token, renewed when due (blocking; one renewal at a time across threads)."""
        t = self._current(refused)
        if t is not None:
            return t
        import httpx

        with self._lock:
            t = self._current(refused)
            if t is not None:
                return t
            with httpx.Client(timeout=self.timeout, trust_env=False) as client:
                for _ in range(2):
                    r = client.post(
                        self.token_endpoint,
                        data=self._token_form(),
                        headers={"DPoP": self.proof("POST", self.token_endpoint)},
                    )
                    t = self._accept(r.status_code, _json_or_none(r), r.headers)
                    if t is not None:
                        return t
            raise WardenError(400, "use_dpop_nonce", "the token endpoint asked for a nonce twice")

    async def token_async(self, refused: Token | None = None) -> Token:
        """A valid access token, renewed when due (one renewal at a time across the loop's tasks)."""
        t = self._current(refused)
        if t is not None:
            return t
        import httpx

        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            t = self._current(refused)
            if t is not None:
                return t
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                for _ in range(2):
                    r = await client.post(
                        self.token_endpoint,
                        data=self._token_form(),
                        headers={"DPoP": self.proof("POST", self.token_endpoint)},
                    )
                    with self._lock:
                        t = self._accept(r.status_code, _json_or_none(r), r.headers)
                    if t is not None:
                        return t
            raise WardenError(400, "use_dpop_nonce", "the token endpoint asked for a nonce twice")

    # -- what a refused request means --------------------------------------------------------------------------

    def retry_reason(self, url: str, status: int, headers: Mapping[str, str]) -> str | None:
        """`nonce` when the server asked for a (new) nonce, `token` when it refused the token (expired or revoked):
        the request may be sent once more. None otherwise. Takes the nonce either way."""
        had_nonce = self.note_nonce(url, headers)
        if status != 401:
            return None
        challenge = _challenge(headers)
        if "use_dpop_nonce" in challenge and had_nonce:
            return "nonce"
        if "invalid_token" in challenge:
            return "token"
        return None

    def headers(self, method: str, url: str, token: Token) -> dict[str, str]:
        return {"Authorization": f"DPoP {token.value}", "DPoP": self.proof(method, url, token.value)}

    # -- requests ----------------------------------------------------------------------------------------------

    def __call__(self, request: Any) -> Any:
        """requests' auth hook (`requests.get(url, auth=auth)`)."""
        token = self.token()
        request.headers.update(self.headers(request.method, request.url, token))
        request.register_hook("response", _RequestsRetry(self, token))
        return request

    # -- httpx -------------------------------------------------------------------------------------------------

    def httpx(self, module: Any = None) -> Any:
        """An `Auth` for `module` (httpx by default; pass `httpx2` for the MCP SDK's client)."""
        if module is None:
            import httpx as module
        return _httpx_auth_class(module)(self)


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class _RequestsRetry:
    """Sends a request once more after a nonce challenge or a refused token (requests' response hook)."""

    def __init__(self, auth: WardenAuth, token: Token) -> None:
        self.auth = auth
        self.token = token

    def __call__(self, response: Any, **kwargs: Any) -> Any:
        request = response.request
        reason = self.auth.retry_reason(request.url, response.status_code, response.headers)
        if reason is None or getattr(request, "_warden_retried", False):
            return response
        if request.body is not None and not isinstance(request.body, (bytes, str)):
            return response  # a streamed body cannot be sent twice
        response.content  # noqa: B018 - read it, so the connection can be reused
        response.close()
        retry = request.copy()
        retry._warden_retried = True
        token = self.auth.token(refused=self.token if reason == "token" else None)
        retry.headers.update(self.auth.headers(retry.method, retry.url, token))
        again = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again


_httpx_classes: dict[Any, type] = {}


def _httpx_auth_class(module: Any) -> type:
    """`WardenAuth` as a subclass of `module.Auth` (httpx checks the class), made once per module."""
    cls = _httpx_classes.get(module)
    if cls is not None:
        return cls

    class HTTPXWardenAuth(module.Auth):  # type: ignore[misc, name-defined]
        def __init__(self, auth: WardenAuth) -> None:
            self.auth = auth

        @staticmethod
        def _retriable(request: Any) -> bool:
            # Bytes bodies can be sent twice; a stream that was not read into memory cannot.
            try:
                request.content  # noqa: B018
                return True
            except Exception:  # noqa: BLE001 - httpx raises RequestNotRead for unread streams
                return False

        def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
            token = self.auth.token()
            request.headers.update(self.auth.headers(request.method, str(request.url), token))
            response = yield request
            reason = self.auth.retry_reason(str(request.url), response.status_code, response.headers)
            if reason is not None and self._retriable(request):
                token = self.auth.token(refused=token if reason == "token" else None)
                request.headers.update(self.auth.headers(request.method, str(request.url), token))
                yield request

        async def async_auth_flow(self, request: Any) -> Any:
            token = await self.auth.token_async()
            request.headers.update(self.auth.headers(request.method, str(request.url), token))
            response = yield request
            reason = self.auth.retry_reason(str(request.url), response.status_code, response.headers)
            if reason is not None and self._retriable(request):
                token = await self.auth.token_async(refused=token if reason == "token" else None)
                request.headers.update(self.auth.headers(request.method, str(request.url), token))
                yield request

    _httpx_classes[module] = HTTPXWardenAuth
    return HTTPXWardenAuth
