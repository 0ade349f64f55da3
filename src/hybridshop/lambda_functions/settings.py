"""The API functions' settings: everything they read from their environment, in one object,
read once per execution environment (on its first invocation) and kept while it stays warm.

A Lambda environment's variables never change during its life, so reading them on every call
(as ``ALLOWED_CALLERS`` was) only costs time; reading them at import would make the modules
unimportable without a database configured (tests, packaging checks). A setting that is
wrong fails every invocation with a 500 and one log line that names the variable.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from hybridshop.db.connection import DatabaseConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(RuntimeError):
    """A variable of the function's environment is invalid; the message names it."""


@dataclass(frozen=True)
class FunctionSettings:
    """``ALLOWED_CALLERS``: comma-separated ``sub``/``email`` claims the function accepts
    (empty: any caller the JWT authorizer let through); ``ALLOWED_SELLERS``: the same for
    adding products (AddProduct; empty: any allowed caller); ``LOG_LEVEL``; the database
    (``DATABASE_URL`` or ``DB_AUTH_MODE=iam`` + ``DB_*``, see ``db.connection``)."""

    database: DatabaseConfig
    allowed_callers: frozenset[str] = frozenset()
    allowed_sellers: frozenset[str] = frozenset()
    log_level: int = logging.INFO
    function_name: str = "local"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FunctionSettings:
        env = os.environ if env is None else env
        level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
        if level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        return cls(
            database=DatabaseConfig.from_env(env),
            allowed_callers=_identities(env.get("ALLOWED_CALLERS", "")),
            allowed_sellers=_identities(env.get("ALLOWED_SELLERS", "")),
            log_level=logging.getLevelName(level),
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        )


def _identities(raw: str) -> frozenset[str]:
    """A comma-separated list of ``sub``/``email`` claims, blanks dropped."""
    return frozenset(c.strip() for c in raw.split(",")) - {""}


_lock = threading.Lock()
_current: FunctionSettings | None = None


def current() -> FunctionSettings:
    """This execution environment's settings, read from the environment on first use."""
    global _current
    settings = _current
    if settings is None:
        with _lock:
            if _current is None:
                _current = FunctionSettings.from_env()
            settings = _current
    return settings


def reset() -> None:
    """Forget the settings so the next call reads the environment again (tests only: a real
    environment's variables never change)."""
    global _current
    with _lock:
        _current = None
