"""The web shop's settings: one object, read from the environment and validated at start.

Cloud Run injects these as environment variables (SECRET_KEY from Secret Manager), so a
missing or malformed value must stop the container at boot, not on the first request.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_API_BASE_URL = "http://127.0.0.1:3000"
DEFAULT_METADATA_SERVER_URL = "http://metadata.google.internal"
ENVIRONMENTS = ("production", "development")
# Plain http is only acceptable when the API is on this machine (local runs of the image).
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
ADMIN_TOKEN_MIN = 16


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _positive_float(name: str, raw: str | None, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise SettingsError(f"{name} must be > 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class WebSettings:
    """Everything the shop needs to run; build with :meth:`from_env` or directly in tests."""

    api_base_url: str = DEFAULT_API_BASE_URL
    # Audience of the Google ID token sent to the API; empty = send no token (open local API).
    api_audience: str = ""
    secret_key: str = ""
    environment: str = "development"
    metadata_server_url: str = DEFAULT_METADATA_SERVER_URL
    # Per-attempt timeouts towards the API: connect fast, read bounded by Lambda's timeout.
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    get_retries: int = 2
    # Who may use "Sell an item" (/manage): whoever signs in with this token. Empty: nobody in
    # production (the pages answer 404), anybody in development (with a banner saying so).
    admin_token: str = ""

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def catalog_open(self) -> bool:
        """Catalog management needs no sign-in (development without SHOP_ADMIN_TOKEN)."""
        return not self.admin_token and not self.production

    @property
    def catalog_enabled(self) -> bool:
        return bool(self.admin_token) or not self.production

    def validated(self) -> WebSettings:
        """Check every field; fill a throwaway secret key in development only."""
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(
                f"SHOP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {self.environment!r}"
            )
        _http_url("API_BASE_URL", self.api_base_url)
        _http_url("METADATA_SERVER_URL", self.metadata_server_url)
        key = self.secret_key
        if self.production:
            if len(key) < 32:
                raise SettingsError("SECRET_KEY is required in production (at least 32 characters)")
            if not self.api_audience:
                raise SettingsError(
                    "API_AUDIENCE is required in production (the API's JWT audience)"
                )
            api = urlsplit(self.api_base_url)
            if api.scheme != "https" and api.hostname not in LOOPBACK:
                raise SettingsError("API_BASE_URL must use https in production")
        elif not key:
            # Development: sessions last as long as this process, which is what we want locally.
            key = secrets.token_hex(32)
        if self.get_retries < 0:
            raise SettingsError("get_retries must be >= 0")
        if self.admin_token and len(self.admin_token) < ADMIN_TOKEN_MIN:
            raise SettingsError(
                f"SHOP_ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return WebSettings(
            api_base_url=self.api_base_url.rstrip("/"),
            api_audience=self.api_audience,
            secret_key=key,
            environment=self.environment,
            metadata_server_url=self.metadata_server_url.rstrip("/"),
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            get_retries=self.get_retries,
            admin_token=self.admin_token,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read Cloud Run's environment variables (see app/flask-app/README.md)."""
        e = os.environ if env is None else env
        return cls(
            api_base_url=e.get("API_BASE_URL") or DEFAULT_API_BASE_URL,
            api_audience=e.get("API_AUDIENCE", ""),
            secret_key=e.get("SECRET_KEY", ""),
            environment=e.get("SHOP_ENV") or "production",
            metadata_server_url=e.get("METADATA_SERVER_URL") or DEFAULT_METADATA_SERVER_URL,
            connect_timeout_s=_positive_float(
                "API_CONNECT_TIMEOUT", e.get("API_CONNECT_TIMEOUT"), 2.0
            ),
            read_timeout_s=_positive_float("API_READ_TIMEOUT", e.get("API_READ_TIMEOUT"), 10.0),
            admin_token=e.get("SHOP_ADMIN_TOKEN", ""),
        ).validated()
