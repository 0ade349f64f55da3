"""Database connections for the Lambda functions and the CLI: DSN locally, RDS IAM on AWS.

The mode is chosen by the environment and never changes behind the user's back:
- ``DB_AUTH_MODE=dsn`` (default when ``DATABASE_URL`` is set): connect with ``DATABASE_URL``.
- ``DB_AUTH_MODE=iam``: ``DB_HOST``, ``DB_NAME``, ``DB_USER`` (+ ``DB_PORT``, ``AWS_REGION``);
  the password is a fresh RDS IAM token (signed locally, valid 15 minutes) on every connect,
  TLS is ``verify-full`` against the RDS CA bundle shipped in this package. If a token cannot
  be made the connect fails: there is deliberately NO fallback to a password.

``ConnectionHolder`` keeps one connection per process (a warm Lambda reuses it across
invocations) and replaces it after a failure.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions

T = TypeVar("T")

RDS_CA_BUNDLE = "rds-global-bundle.pem"


class DatabaseConfigError(RuntimeError):
    """The environment does not describe a usable database; the message names the variable."""


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or dropped the connection; the caller may retry later."""


def rds_ca_bundle_path() -> Path:
    """Path of the Amazon RDS CA bundle shipped in the package (for ``sslrootcert``)."""
    return Path(str(resources.files("hybridshop.db") / "certs" / RDS_CA_BUNDLE))


@dataclass(frozen=True)
class DatabaseConfig:
    mode: str  # "dsn" or "iam"
    dsn: str | None = None
    host: str | None = None
    port: int = 5432
    dbname: str | None = None
    user: str | None = None
    region: str | None = None
    sslrootcert: str | None = None
    connect_timeout: int = 5
    application_name: str = "hybridshop"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DatabaseConfig:
        env = os.environ if env is None else env
        mode = env.get("DB_AUTH_MODE", "").strip().lower() or (
            "dsn" if env.get("DATABASE_URL") else ""
        )
        timeout = int(env.get("DB_CONNECT_TIMEOUT", "5"))
        app = env.get("AWS_LAMBDA_FUNCTION_NAME") or env.get("DB_APPLICATION_NAME") or "hybridshop"
        if mode == "dsn":
            dsn = env.get("DATABASE_URL")
            if not dsn:
                raise DatabaseConfigError("DB_AUTH_MODE=dsn needs DATABASE_URL (postgresql://...)")
            return cls(mode="dsn", dsn=dsn, connect_timeout=timeout, application_name=app)
        if mode == "iam":
            missing = [name for name in ("DB_HOST", "DB_NAME", "DB_USER") if not env.get(name)]
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if not region:
                missing.append("AWS_REGION")
            if missing:
                raise DatabaseConfigError(
                    "DB_AUTH_MODE=iam needs " + ", ".join(missing) + " (no password fallback)"
                )
            sslrootcert = env.get("DB_SSL_ROOT_CERT") or str(rds_ca_bundle_path())
            if not Path(sslrootcert).is_file():
                raise DatabaseConfigError(
                    f"the RDS CA bundle {sslrootcert} is missing (needed for sslmode=verify-full): "
                    "build the Lambda zip with `hybridshop package`, which ships it, or set "
                    "DB_SSL_ROOT_CERT to a copy of https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
                )
            return cls(
                mode="iam",
                host=env["DB_HOST"],
                port=int(env.get("DB_PORT", "5432")),
                dbname=env["DB_NAME"],
                user=env["DB_USER"],
                region=region,
                sslrootcert=sslrootcert,
                connect_timeout=timeout,
                application_name=app,
            )
        if mode:
            raise DatabaseConfigError(f"DB_AUTH_MODE must be 'dsn' or 'iam', got {mode!r}")
        raise DatabaseConfigError(
            "no database configured: set DATABASE_URL (local) or DB_AUTH_MODE=iam with "
            "DB_HOST, DB_NAME, DB_USER and AWS_REGION (RDS IAM authentication)"
        )

    def connect_kwargs(
        self, token_factory: Callable[[DatabaseConfig], str] | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``psycopg2.connect``; in IAM mode this signs a fresh token."""
        common: dict[str, Any] = {
            "connect_timeout": self.connect_timeout,
            "application_name": self.application_name[:63],
        }
        if self.mode == "dsn":
            return {"dsn": self.dsn, **common}
        make_token = token_factory or generate_iam_token
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": make_token(self),
            "sslmode": "verify-full",
            "sslrootcert": self.sslrootcert,
            **common,
        }


def generate_iam_token(config: DatabaseConfig) -> str:
    """Sign an RDS IAM auth token (SigV4, no network call) with the ambient AWS credentials.

    boto3 is imported here, not at module level: it costs ~300 ms and only IAM mode needs it
    (the Lambda runtime ships boto3, so the deployment zip does not).
    """
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, NoCredentialsError
    except ImportError:
        raise DatabaseConfigError(
            "DB_AUTH_MODE=iam needs boto3 to sign the RDS token; the Lambda runtime ships it, "
            "elsewhere install it with: pip install 'hybridshop[aws]'"
        ) from None

    try:
        client = boto3.session.Session().client("rds", region_name=config.region)
        token: str = client.generate_db_auth_token(
            DBHostname=config.host, Port=config.port, DBUsername=config.user, Region=config.region
        )
    except NoCredentialsError:
        raise DatabaseConfigError(
            "RDS IAM authentication needs AWS credentials (the Lambda role provides them); "
            "none were found, and there is no password fallback"
        ) from None
    except BotoCoreError as exc:
        raise DatabaseConfigError(f"cannot sign an RDS IAM token: {exc}") from None
    return token


def connect(
    config: DatabaseConfig | None = None, **overrides: Any
) -> psycopg2.extensions.connection:
    """Open one connection (autocommit off) for the configured mode."""
    config = config or DatabaseConfig.from_env()
    kwargs = config.connect_kwargs()
    kwargs.update(overrides)
    try:
        return psycopg2.connect(**kwargs)
    except psycopg2.OperationalError as exc:
        where = config.host if config.mode == "iam" else "DATABASE_URL"
        raise DatabaseUnavailable(
            f"cannot connect to the database ({where}): {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ConnectionHolder:
    """One reusable connection per process, replaced after a failure.

    ``run(work)`` hands the connection to ``work`` (which owns the transaction). If the
    connection turns out to be broken, it is discarded so the next call reconnects (with a
    fresh IAM token), and ``DatabaseUnavailable`` is raised. Work is never re-run blindly:
    a write that may or may not have committed must not be repeated behind the caller's back.
    """

    def __init__(
        self, config_factory: Callable[[], DatabaseConfig] = DatabaseConfig.from_env
    ) -> None:
        self._config_factory = config_factory
        self._conn: psycopg2.extensions.connection | None = None
        self._lock = threading.Lock()

    def _get(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            conn = connect(self._config_factory())
            # Every catalog operation is a single statement (its own transaction), so
            # autocommit saves the BEGIN and COMMIT round trips on each invocation.
            conn.autocommit = True
            self._conn = conn
        return self._conn

    def run(self, work: Callable[[psycopg2.extensions.connection], T]) -> T:
        with self._lock:
            conn = self._get()
            try:
                return work(conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                self.reset()
                raise DatabaseUnavailable(
                    f"lost the database connection: {_first_line(exc)}"
                ) from exc
            finally:
                if (
                    self._conn is not None
                    and not self._conn.closed
                    and (
                        self._conn.get_transaction_status()
                        != psycopg2.extensions.TRANSACTION_STATUS_IDLE
                    )
                ):
                    self._conn.rollback()

    def reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None
