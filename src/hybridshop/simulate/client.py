"""The simulator's side of the public HTTP API: one keep-alive urllib3 connection per worker,
bearer tokens from wherever the shop would get them, and the checks that turn a wrong URL, an
unreachable API or a refused token into one line that says what to do.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3

from hybridshop.settings import local_metadata_url
from hybridshop.web.tokens import IdTokenSource, TokenError

GOOGLE_METADATA_URL = "http://metadata.google.internal"
USER_AGENT = "hybridshop-simulate/1"


class SimulationAborted(RuntimeError):
    """The simulation cannot start or go on; the message is one line saying what to do."""


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenProvider:
    """Where the bearer token comes from; ``refresh`` says whether a new one may help."""

    description = "no token"

    def token(self) -> str | None:
        return None

    def refresh(self) -> bool:
        return False


class StaticToken(TokenProvider):
    description = "--token"

    def __init__(self, token: str) -> None:
        self._token = token.strip()

    def token(self) -> str | None:
        return self._token


class MetadataToken(TokenProvider):
    """Google's metadata server (on GCP) or the local gateway's stand-in for it."""

    def __init__(self, metadata_url: str, audience: str, description: str) -> None:
        self._source = IdTokenSource(metadata_url, audience)
        self.description = description

    def token(self) -> str | None:
        try:
            return self._source.token()
        except TokenError as exc:
            raise SimulationAborted(f"cannot get an identity token: {exc}") from None

    def refresh(self) -> bool:
        self._source.invalidate()
        return True


class GcloudToken(TokenProvider):
    """``gcloud auth print-identity-token`` (a developer's own Google identity)."""

    description = "gcloud auth print-identity-token"
    LIFETIME_S = 50 * 60  # Google ID tokens live an hour

    def __init__(self, audience: str | None) -> None:
        self._audience = audience
        self._lock = threading.Lock()
        self._token: str | None = None
        self._fetched = 0.0

    def _fetch(self) -> str:
        command = ["gcloud", "auth", "print-identity-token"]
        if self._audience:
            command.append(f"--audiences={self._audience}")
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0 and self._audience:
            # user accounts cannot choose an audience; try the plain token
            result = subprocess.run(
                command[:3], capture_output=True, text=True, timeout=30, check=False
            )
        if result.returncode != 0 or not result.stdout.strip():
            message = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise SimulationAborted(f"gcloud auth print-identity-token failed: {message}")
        return result.stdout.strip()

    def token(self) -> str | None:
        with self._lock:
            if self._token is None or time.monotonic() - self._fetched > self.LIFETIME_S:
                self._token = self._fetch()
                self._fetched = time.monotonic()
            return self._token

    def refresh(self) -> bool:
        with self._lock:
            self._token = None
        return True


def _metadata_server_reachable(url: str) -> bool:
    try:
        resp = requests.get(url, headers={"Metadata-Flavor": "Google"}, timeout=0.5)
    except requests.RequestException:
        return False
    return resp.headers.get("Metadata-Flavor") == "Google"


def resolve_tokens(api_url: str, token: str | None, audience: str) -> TokenProvider:
    """The token source for ``api_url``: ``--token``; the local gateway's issuer for a local
    API (used only if the API asks for a token); Google's metadata server or gcloud otherwise."""
    if token:
        return StaticToken(token)
    if is_loopback_url(api_url):
        # the gateway's issuer has its own loopback listener (127.0.0.1:3001 by default)
        return MetadataToken(
            os.environ.get("METADATA_SERVER_URL") or local_metadata_url(),
            audience,
            "the local gateway's issuer",
        )
    metadata = os.environ.get("METADATA_SERVER_URL") or GOOGLE_METADATA_URL
    if _metadata_server_reachable(metadata):
        return MetadataToken(metadata, audience, "Google's metadata server")
    if shutil.which("gcloud"):
        return GcloudToken(audience)
    return TokenProvider()


@dataclass
class Answer:
    status: int  # 0: no answer (connection error or timeout)
    body: Any  # parsed JSON, or None
    headers: Mapping[str, str]
    ms: float
    error: str | None = None  # transport failure name when status == 0

    @property
    def code(self) -> str:
        """The API's error code ("already_sold"), "ok", or the transport failure."""
        if self.status == 0:
            return self.error or "no_answer"
        if self.status < 400:
            return "ok"
        err = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(err, dict) and err.get("code"):
            return str(err["code"])
        return str(self.status)


class HttpClient:
    """One worker's keep-alive connection to the API.

    urllib3 (the connection pool under ``requests``) directly: the same well-kept HTTP/1.1
    stack without the ``requests`` layer, which measured ~3x the client CPU per request on
    loopback — and the simulator must never be what limits the rate.
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 15.0,
        use_token: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        self.tokens = tokens
        self.use_token = use_token
        self._manager = urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        )
        self._pool = self._manager.connection_from_url(self.base_url)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}

    def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        target = self.prefix + path + ("?" + urlencode(query) if query else "")
        all_headers = {**self._headers, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        if self.use_token:
            token = self.tokens.token()
            if token:
                all_headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            resp = self._pool.urlopen(
                method, target, body=data, headers=all_headers, retries=False, redirect=False
            )
        except urllib3.exceptions.HTTPError as exc:
            return Answer(0, None, {}, (time.perf_counter() - started) * 1000, _reason(exc))
        ms = (time.perf_counter() - started) * 1000
        parsed: Any = None
        if resp.data:
            try:
                parsed = json.loads(resp.data)
            except ValueError:
                parsed = None
        return Answer(resp.status, parsed, resp.headers, ms)

    def close(self) -> None:
        self._manager.clear()


def _reason(exc: Exception) -> str:
    """A short name for a transport failure: connection refused, unknown host, timeout..."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("Failed to resolve", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if needle in text:
            return reason
    # (urllib3's NewConnectionError is a ConnectTimeoutError: look at the text first)
    if isinstance(exc, urllib3.exceptions.TimeoutError | requests.Timeout):
        return "timeout"
    return type(exc).__name__


def describe_refusal(answer: Answer, tokens: TokenProvider) -> str:
    detail = ""
    if isinstance(answer.body, dict):
        err = answer.body.get("error")
        detail = (
            str(err.get("message"))
            if isinstance(err, dict)
            else str(answer.body.get("message", ""))
        )
    if answer.status == 401:
        return (
            f"the API refused the token from {tokens.description} (401 {detail or 'Unauthorized'}): "
            "it is expired, malformed or for another audience; pass a fresh --token "
            "(gcloud auth print-identity-token --audiences=AUDIENCE) or the right --audience"
        )
    return (
        f"the API accepted the token from {tokens.description} but refuses this caller "
        f"(403 {detail or 'Forbidden'}): the functions accept only ALLOWED_CALLERS; use the "
        "shop's identity"
    )


def check_api(base_url: str, tokens: TokenProvider) -> bool:
    """Probe ``GET /categories``; return whether requests must carry a token.

    Raises ``SimulationAborted`` with one line for: no answer, not the hybridshop API, token
    refused, server error.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SimulationAborted(
            f"--api-url must be an http:// or https:// URL such as http://127.0.0.1:3000, "
            f"not {base_url!r}"
        )
    client = HttpClient(base_url, tokens, connect_timeout_s=3.0, read_timeout_s=10.0)
    has_source = type(tokens) is not TokenProvider
    try:
        # a local gateway is asked without a token first: it only wants one when run with --auth
        client.use_token = has_source and (
            isinstance(tokens, StaticToken) or not is_loopback_url(base_url)
        )
        answer = client.send("GET", "/categories")
        if answer.status == 401 and has_source and not client.use_token:
            client.use_token = True
            answer = client.send("GET", "/categories")
        elif answer.status == 401 and client.use_token and tokens.refresh():
            answer = client.send("GET", "/categories")
    finally:
        client.close()
    if answer.status == 0:
        hint = (
            "start it with `hybridshop up` (or `hybridshop api`)"
            if is_loopback_url(base_url)
            else "check --api-url and your network"
        )
        raise SimulationAborted(
            f"cannot reach the API at {base_url} ({answer.error}); {hint}, or pass --api-url"
        )
    if answer.status in (401, 403):
        if not has_source:
            raise SimulationAborted(
                f"the API at {base_url} wants a token ({answer.status}); pass --token, or run "
                "where Google's metadata server or gcloud can give one"
            )
        raise SimulationAborted(describe_refusal(answer, tokens))
    if answer.status >= 500:
        raise SimulationAborted(
            f"the API at {base_url} answered {answer.status} to GET /categories; check its logs "
            "(`hybridshop up` prints them) before simulating traffic"
        )
    body = answer.body
    if (
        answer.status != 200
        or not isinstance(body, dict)
        or not isinstance(body.get("items"), list)
    ):
        raise SimulationAborted(
            f"{base_url} does not look like the hybridshop API (GET /categories answered "
            f"{answer.status}); check --api-url (a deployed API's URL includes its stage, if any)"
        )
    return client.use_token
