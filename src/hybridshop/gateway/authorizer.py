"""JWT authorizer with HTTP API semantics (what ``aws_apigatewayv2_authorizer`` type JWT does).

The token comes from the ``Authorization`` header (with or without ``Bearer``); it must be
RS256, signed by a key of the issuer's JWKS (found through its OpenID configuration), with
``iss`` equal to the configured issuer, ``aud`` or ``client_id`` among the audiences, and
valid ``exp``/``nbf``/``iat``. Anything else is 401 and the function is never called.
Claims reach the function as strings, as AWS renders them.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

from hybridshop.settings import LOCAL_API_AUDIENCE

LOCAL_ISSUER = "local"  # placeholder: the gateway substitutes its own issuer URL at start
JWKS_TTL_S = 300.0
JWKS_MIN_REFRESH_S = 5.0  # an unknown kid triggers a refetch, at most this often
HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class JwtAuthorizerConfig:
    issuer: str  # exact ``iss``; LOCAL_ISSUER means "this gateway's /_local issuer"
    audiences: tuple[str, ...]
    jwks_url: str | None = (
        None  # default: ``jwks_uri`` of <issuer>/.well-known/openid-configuration
    )
    leeway_s: int = 30

    @classmethod
    def local(cls, audiences: tuple[str, ...] = (LOCAL_API_AUDIENCE,)) -> JwtAuthorizerConfig:
        """An authorizer that trusts the gateway's own local issuer."""
        return cls(issuer=LOCAL_ISSUER, audiences=audiences)


class Unauthorized(Exception):
    """The request is rejected with 401; the message is for the gateway log only."""


def claim_as_string(value: Any) -> str:
    """Render a claim the way HTTP API passes it: scalars as text, arrays as ``[a b]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(claim_as_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _get_json(url: str) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise Unauthorized(f"refusing non-HTTP JWKS/OIDC URL {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise Unauthorized(f"{url} did not return a JSON object")
    return data


class JwtAuthorizer:
    """Validates tokens for one issuer; JWKS fetched over HTTP and cached (thread-safe)."""

    def __init__(self, config: JwtAuthorizerConfig) -> None:
        if config.issuer == LOCAL_ISSUER:
            raise ValueError("resolve the local issuer URL before building the authorizer")
        if not config.audiences:
            raise ValueError("a JWT authorizer needs at least one audience")
        self.config = config
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _jwks_url(self) -> str:
        if self.config.jwks_url:
            return self.config.jwks_url
        oidc = _get_json(self.config.issuer.rstrip("/") + "/.well-known/openid-configuration")
        uri = oidc.get("jwks_uri")
        if not isinstance(uri, str):
            raise Unauthorized("issuer's OpenID configuration has no jwks_uri")
        return uri

    def _refresh(self) -> None:
        jwks = _get_json(self._jwks_url())
        keys: dict[str, Any] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") == "RSA" and "kid" in jwk and jwk.get("use", "sig") == "sig":
                keys[jwk["kid"]] = RSAAlgorithm.from_jwk(json.dumps(jwk))
        self._keys = keys
        self._fetched_at = time.monotonic()

    def _key(self, kid: str) -> Any:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = age > JWKS_TTL_S
            unknown = kid not in self._keys and age > JWKS_MIN_REFRESH_S
            if stale or unknown:
                try:
                    self._refresh()
                except (OSError, ValueError) as exc:
                    if not self._keys:
                        raise Unauthorized(f"cannot fetch the issuer's JWKS: {exc}") from None
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized(f"no key with kid {kid!r} in the issuer's JWKS")
        return key

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The ``authorizer`` block of the event (``{"jwt": {...}}``), or raise Unauthorized."""
        if not authorization:
            raise Unauthorized("no Authorization header")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from None
        if header.get("alg") != "RS256":
            raise Unauthorized(f"unsupported alg {header.get('alg')!r}")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("token has no kid")
        key = self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        iat = claims.get("iat")
        if isinstance(iat, (int, float)) and iat > time.time() + self.config.leeway_s:
            raise Unauthorized("token issued in the future")
        self._check_audience(claims)
        result: dict[str, Any] = {"claims": {k: claim_as_string(v) for k, v in claims.items()}}
        scopes = _scopes(claims)
        if scopes:
            result["scopes"] = scopes
        return {"jwt": result}

    def _check_audience(self, claims: dict[str, Any]) -> None:
        aud = claims.get("aud", claims.get("client_id"))
        values = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(v, str) and v in self.config.audiences for v in values):
            raise Unauthorized(f"audience {aud!r} not accepted")


def _scopes(claims: dict[str, Any]) -> list[str]:
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [str(s) for s in raw]
    return []
