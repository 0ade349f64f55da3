"""Identity towards the API: Google ID tokens from the metadata server, cached until expiry.

On Cloud Run the metadata server mints an ID token for the service account and the API
Gateway's JWT authorizer checks it. Locally the gateway's development issuer serves the same
metadata endpoint, so this one code path works in both places; only the base URL differs.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import requests

IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
# Refresh a little early so that a token never expires between our check and the API's.
REFRESH_MARGIN_S = 60.0


class TokenError(RuntimeError):
    """The metadata server did not give us a usable token (treated as the API being down)."""


def _expiry(token: str) -> float:
    """The token's ``exp`` claim; the signature is the API's business, not ours."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise TokenError("metadata server returned something that is not a JWT") from exc


class IdTokenSource:
    """Fetches and caches one ID token for one audience; thread-safe for gunicorn threads."""

    def __init__(
        self,
        metadata_server_url: str,
        audience: str,
        session: requests.Session | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        self._url = metadata_server_url.rstrip("/") + IDENTITY_PATH
        self._audience = audience
        self._session = session or requests.Session()
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0  # how many times we went to the metadata server (observability)

    def token(self) -> str:
        """A token valid for at least REFRESH_MARGIN_S more seconds."""
        with self._lock:
            if self._token is None or time.time() >= self._expires_at - REFRESH_MARGIN_S:
                self._token = self._fetch()
                self._expires_at = _expiry(self._token)
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the API said 401: the key may have rotated)."""
        with self._lock:
            self._token = None

    def _fetch(self) -> str:
        try:
            resp = self._session.get(
                self._url,
                params={"audience": self._audience},
                headers={"Metadata-Flavor": "Google"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise TokenError(f"metadata server unreachable: {exc.__class__.__name__}") from exc
        if resp.status_code != 200:
            raise TokenError(f"metadata server answered {resp.status_code}")
        self.fetches += 1
        return resp.text.strip()
