"""Local defaults shared by every command: where state lives and which ports we use.

Everything here is for the *local* stack; production settings are read by each adapter
from its own environment (see ``db.connection`` and ``web.settings``).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_API_PORT = 3000  # as `sam local start-api`
# the local token issuer / metadata server stand-in, on its own loopback listener
DEFAULT_ISSUER_PORT = 3001
DEFAULT_WEB_PORT = 8080
DEFAULT_DASHBOARD_PORT = 8090
DEFAULT_PG_PORT = 55432  # away from a system PostgreSQL on 5432
DEFAULT_HOST = "127.0.0.1"


def local_metadata_url(port: int = DEFAULT_ISSUER_PORT) -> str:
    """The local gateway's token issuer, which answers as the GCE/Cloud Run metadata server."""
    return f"http://127.0.0.1:{port}"


DEFAULT_DB_NAME = "hybridshop"
DEFAULT_CONCURRENCY = 8  # warm execution environments per function in the local gateway
# Load shedding in the local gateway: with every environment of a function busy, at most
# this many requests wait for one, none longer than this; past that 429 + Retry-After.
DEFAULT_MAX_QUEUE = 32
DEFAULT_MAX_WAIT_S = 2.0

# Identities of the local stand-ins; each side must use the same string.
# The API's JWT audience: what the local authorizer accepts and the shop asks tokens for.
LOCAL_API_AUDIENCE = "hybridshop-api"
# The shop's service account: the identity the local metadata server's ID tokens carry, and
# what the functions' ALLOWED_CALLERS lets in locally (on GCP, the Cloud Run service account).
LOCAL_SERVICE_ACCOUNT = "shop@hybridshop.local"


def state_dir() -> Path:
    """Directory for local state (PostgreSQL data, DuckDB warehouse, dev keys).

    ``HYBRIDSHOP_HOME`` overrides it; the default keeps state next to where the user works
    so that ``hybridshop up`` run twice in the same place reuses the same data.
    """
    return Path(os.environ.get("HYBRIDSHOP_HOME", ".hybridshop")).resolve()


def env_int(name: str, default: int) -> int:
    """Read an integer from the environment, failing with a message that names the variable."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None
