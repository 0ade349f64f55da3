"""Local development OIDC issuer: a stand-in for Google's, which signs Cloud Run ID tokens.

On Cloud Run the shop asks the metadata server for an ID token (``audience=`` the API) and
API Gateway's JWT authorizer checks it against Google's JWKS. Locally the gateway plays both
parts: it serves an OpenID configuration, a JWKS and a metadata-server-compatible identity
endpoint, so the shop runs the same token code with only the metadata base URL changed.
The RSA key is created once under ``<state_dir>/issuer/`` (mode 0600) so tokens survive
restarts of the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from hybridshop.settings import LOCAL_SERVICE_ACCOUNT

TOKEN_LIFETIME_S = 3600
METADATA_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
KEY_FILE = "signing-key.pem"


def load_or_create_key(directory: Path) -> rsa.RSAPrivateKey:
    """The issuer's private key, generated on first use and kept private (0700 dir, 0600 file)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)  # atomic: two gateways starting together never see half a key
    return load_or_create_key(directory)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class LocalIssuer:
    def __init__(self, issuer_url: str, key_dir: Path) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self._key = load_or_create_key(key_dir)
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        # RFC 7638 thumbprint as kid: stable for a given key, like real issuers' kids.
        canonical = json.dumps(
            {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
        )
        self.kid = _b64url(hashlib.sha256(canonical.encode()).digest())
        self._jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer_url}/jwks.json"

    @property
    def metadata_url(self) -> str:
        """What the shop's METADATA_SERVER_URL should be locally: the issuer's own listener
        serves ``/computeMetadata/v1/...`` as the metadata server does."""
        return self.issuer_url

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "sub"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}

    def issue(
        self,
        audience: str,
        *,
        subject: str = LOCAL_SERVICE_ACCOUNT,
        lifetime_s: int = TOKEN_LIFETIME_S,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed ID token shaped like the ones Google's metadata server returns."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "aud": audience,
            "azp": subject,
            "sub": subject,
            "email": subject,
            "email_verified": True,
            "iat": now,
            "exp": now + lifetime_s,
            **(extra or {}),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})
