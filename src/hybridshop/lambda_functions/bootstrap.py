"""Database bootstrap Lambda: everything RDS needs before the API and Datastream can use it.

Terraform invokes it (``aws_lambda_invocation``) so no one runs psql on an operator's machine.
Each step is idempotent, so a re-run after new migrations (or a retry after a failure) is safe:

1. apply the migrations (``hybridshop.db.migrate``; advisory-locked, recorded);
2. the application user, ``GRANT rds_iam`` (it logs in with IAM tokens only) and exactly the
   table privileges the catalog needs;
3. the Datastream user, ``GRANT rds_replication``, its password from Secrets Manager (IAM auth
   cannot open a replication connection), SELECT on the replicated tables. The password is
   sent as a SCRAM verifier, never as a literal (``log_statement = ddl`` exports every
   ``ALTER ROLE`` to CloudWatch), and only when the secret's version differs from the one
   recorded in the role's comment;
4. the publication and the logical replication slot (``hybridshop.db.replication``). A slot
   PostgreSQL invalidated (``wal_status = 'lost'``, past ``max_slot_wal_keep_size``) is
   reported; it is dropped and re-created only with ``repair_lost_slot`` (Datastream must then
   backfill: the changes made while it was lost are gone).

It logs in as the RDS master user, whose password RDS itself keeps in Secrets Manager. The
master never gets ``rds_iam`` (that would disable its password login) and neither does the
Datastream user. ``{"action": "check"}`` reports the state without changing anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from hybridshop.db.migrate import apply_migrations, pending_migrations
from hybridshop.db.replication import (
    DEFAULT_PUBLICATION,
    DEFAULT_SCHEMA,
    DEFAULT_SLOT,
    REPLICATED_TABLES,
    ensure_publication,
    ensure_slot,
)
from hybridshop.lambda_functions.settings import LOG_LEVELS

LOG = logging.getLogger("hybridshop.bootstrap")

# What the API's catalog code does and nothing more: no DELETE, no DDL.
APP_TABLE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "products": ("SELECT", "INSERT", "UPDATE"),
    "orders": ("SELECT", "INSERT"),
}

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ACTIONS = ("bootstrap", "check")
_VERSION_COMMENT = "hybridshop datastream password version "


class BootstrapError(RuntimeError):
    """The bootstrap cannot proceed; the message says what to fix (shown by terraform apply)."""


@dataclass(frozen=True)
class BootstrapSettings:
    """The bootstrap function's settings, read once from its environment: the names of what it
    creates (plain SQL identifiers, validated) and how it reaches the database as the master
    user (``DB_HOST``, ``DB_PORT``, ``DB_NAME``, ``DB_SSLMODE``, ``DB_SSL_ROOT_CERT``, the
    secrets' ARNs), and ``LOG_LEVEL``."""

    app_user: str = "hybridshop_app"
    datastream_user: str = "hybridshop_datastream"
    publication: str = DEFAULT_PUBLICATION
    slot: str = DEFAULT_SLOT
    schema: str = DEFAULT_SCHEMA
    tables: tuple[str, ...] = REPLICATED_TABLES
    db_host: str = ""
    db_port: int = 5432
    db_name: str = ""
    db_sslmode: str = "verify-full"
    db_sslrootcert: str = ""  # default: the RDS CA bundle shipped in the package
    master_secret_arn: str = ""
    datastream_secret_arn: str = ""  # needed by the "bootstrap" action only
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        names = {
            "app_user": self.app_user,
            "datastream_user": self.datastream_user,
            "publication": self.publication,
            "slot": self.slot,
            "schema": self.schema,
        }
        for field_name, value in names.items():
            if not _ROLE_NAME.match(value):
                raise BootstrapError(
                    f"{field_name}={value!r} must be a lowercase SQL identifier ([a-z_][a-z0-9_]*)"
                )
        if self.app_user == self.datastream_user:
            raise BootstrapError("the app user and the Datastream user must be different roles")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BootstrapSettings:
        port = env.get("DB_PORT") or "5432"
        if not port.isdigit():
            raise BootstrapError(f"DB_PORT must be a port number, got {port!r}")
        level = (env.get("LOG_LEVEL") or cls.log_level).strip().upper()
        if level not in LOG_LEVELS:
            raise BootstrapError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        return cls(
            app_user=env.get("APP_DB_USER") or cls.app_user,
            datastream_user=env.get("DATASTREAM_DB_USER") or cls.datastream_user,
            publication=env.get("PUBLICATION") or cls.publication,
            slot=env.get("REPLICATION_SLOT") or cls.slot,
            db_host=_env(env, "DB_HOST"),
            db_port=int(port),
            db_name=_env(env, "DB_NAME"),
            db_sslmode=env.get("DB_SSLMODE") or cls.db_sslmode,
            db_sslrootcert=env.get("DB_SSL_ROOT_CERT", ""),
            master_secret_arn=_env(env, "MASTER_SECRET_ARN"),
            datastream_secret_arn=env.get("DATASTREAM_SECRET_ARN", ""),
            log_level=level,
        )


def _role_exists(cur: Any, role: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cur.fetchone() is not None


def _is_member(cur: Any, role: str, group: str) -> bool:
    cur.execute(
        """
        SELECT 1 FROM pg_auth_members m
        JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
        WHERE r.rolname = %s AND g.rolname = %s
        """,
        (role, group),
    )
    return cur.fetchone() is not None


def _require_rds_roles(cur: Any) -> None:
    missing = [r for r in ("rds_iam", "rds_replication") if not _role_exists(cur, r)]
    if missing:
        raise BootstrapError(
            "roles " + ", ".join(missing) + " do not exist: this is not an Amazon RDS PostgreSQL "
            "instance (they are created by RDS itself)"
        )


def ensure_app_user(cur: Any, settings: BootstrapSettings, dbname: str) -> bool:
    """Create the IAM-authenticated application user with the catalog's privileges only."""
    user = sql.Identifier(settings.app_user)
    created = False
    if not _role_exists(cur, settings.app_user):
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(user))
        created = True
    if not _is_member(cur, settings.app_user, "rds_iam"):
        cur.execute(sql.SQL("GRANT rds_iam TO {}").format(user))
    cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), user))
    cur.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(settings.schema), user)
    )
    for table, privileges in APP_TABLE_PRIVILEGES.items():
        cur.execute(
            sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                sql.SQL(", ").join(sql.SQL(p) for p in privileges),
                sql.Identifier(settings.schema, table),
                user,
            )
        )
    return created


def _role_comment(cur: Any, role: str) -> str | None:
    cur.execute(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s", (role,)
    )
    row = cur.fetchone()
    return row[0] if row else None


def scram_verifier(conn: Any, password: str, user: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password``, computed by libpq on this side: the server
    (and its statement log) only ever sees the verifier."""
    from psycopg2.extensions import encrypt_password

    return str(encrypt_password(password, user, conn, "scram-sha-256"))


def ensure_datastream_user(
    cur: Any,
    settings: BootstrapSettings,
    dbname: str,
    password: str,
    password_version: str | None = None,
) -> tuple[bool, bool]:
    """Create the replication user Datastream logs in with, or set its password when the
    secret's version changed (always when no version is given). Returns (created, altered)."""
    if len(password) < 16:
        raise BootstrapError(
            "the Datastream password from Secrets Manager is shorter than 16 characters"
        )
    user = sql.Identifier(settings.datastream_user)
    created = altered = False
    verifier = scram_verifier(cur.connection, password, settings.datastream_user)
    if not _role_exists(cur, settings.datastream_user):
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(user), (verifier,))
        created = altered = True
    elif password_version is None or _role_comment(cur, settings.datastream_user) != (
        _VERSION_COMMENT + password_version
    ):
        # Keeps the role in step with the secret (e.g. after the secret was replaced).
        cur.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD %s").format(user), (verifier,))
        altered = True
    if altered and password_version is not None:
        # The version id only (no password-derived value: role comments are world-readable).
        cur.execute(
            sql.SQL("COMMENT ON ROLE {} IS %s").format(user), (_VERSION_COMMENT + password_version,)
        )
    if _is_member(cur, settings.datastream_user, "rds_iam"):
        # rds_iam would switch the role to token-only login, which Datastream cannot use.
        cur.execute(sql.SQL("REVOKE rds_iam FROM {}").format(user))
    if not _is_member(cur, settings.datastream_user, "rds_replication"):
        cur.execute(sql.SQL("GRANT rds_replication TO {}").format(user))
    schema = sql.Identifier(settings.schema)
    cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), user))
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, user))
    cur.execute(
        sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(settings.schema, t) for t in settings.tables), user
        )
    )
    # Tables added to the publication later must be readable for Datastream's backfill too.
    cur.execute(
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            schema, user
        )
    )
    return created, altered


def slot_status(conn: Any, slot: str) -> str | None:
    """``wal_status`` of the slot (reserved, extended, unreserved, lost), None if it is missing."""
    with conn.cursor() as cur:
        cur.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    return None if row is None else str(row[0])


def repair_lost_slot(conn: Any, slot: str) -> bool:
    """Drop ``slot`` if PostgreSQL invalidated it (it can never stream again); True if dropped."""
    if slot_status(conn, slot) != "lost":
        return False
    with conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    LOG.warning("dropped the invalidated replication slot %s: Datastream must backfill", slot)
    return True


def bootstrap_database(
    conn: Any,
    settings: BootstrapSettings,
    datastream_password: str,
    password_version: str | None = None,
    repair_slot: bool = False,
) -> dict[str, Any]:
    """Run every step on ``conn`` (the master user's connection) and report what changed."""
    dbname = conn.get_dsn_parameters().get("dbname", "")
    applied = apply_migrations(conn)
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            _require_rds_roles(cur)
            app_created = ensure_app_user(cur, settings, dbname)
            ds_created, ds_altered = ensure_datastream_user(
                cur, settings, dbname, datastream_password, password_version
            )
            pub_changed = ensure_publication(
                conn, settings.publication, settings.tables, settings.schema
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    # A logical slot cannot be created in a transaction that has written anything.
    conn.autocommit = True
    repaired = repair_slot and repair_lost_slot(conn, settings.slot)
    slot_created = ensure_slot(conn, settings.slot)
    status = slot_status(conn, settings.slot)
    if status == "lost":
        LOG.error(
            "replication slot %s is invalidated (wal_status lost): Datastream cannot resume; "
            "re-run with repair_lost_slot (Terraform: db_repair_lost_slot = true), then backfill",
            settings.slot,
        )
    report = {
        "action": "bootstrap",
        "database": dbname,
        "migrations_applied": applied,
        "app_user": settings.app_user,
        "app_user_created": app_created,
        "datastream_user": settings.datastream_user,
        "datastream_user_created": ds_created,
        "datastream_password_set": ds_altered,
        "publication": settings.publication,
        "publication_changed": pub_changed,
        "replication_slot": settings.slot,
        "replication_slot_created": slot_created,
        "replication_slot_status": status,
        "replication_slot_repaired": repaired,
    }
    LOG.info("bootstrap done", extra={"report": report})
    return report


def check_database(conn: Any, settings: BootstrapSettings) -> dict[str, Any]:
    """Read-only report: pending migrations, roles and memberships, publication, slot and its lag."""
    pending = pending_migrations(conn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
            "wal_status FROM pg_replication_slots WHERE slot_name = %s",
            (settings.slot,),
        )
        slot = cur.fetchone()
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (settings.publication,))
        publication = cur.fetchone() is not None
        report = {
            "action": "check",
            "pending_migrations": pending,
            "app_user_has_rds_iam": _is_member(cur, settings.app_user, "rds_iam"),
            "datastream_user_has_rds_replication": _is_member(
                cur, settings.datastream_user, "rds_replication"
            ),
            "publication_exists": publication,
            "slot_exists": slot is not None,
            "slot_active": bool(slot[0]) if slot else False,
            "slot_retained_wal_bytes": int(slot[1]) if slot and slot[1] is not None else None,
            "slot_wal_status": str(slot[2]) if slot else None,
            # The address this session reached the server on (inside the VPC: its private IP,
            # which Datastream's private connectivity needs; it changes on failover).
            "server_address": _server_address(cur),
        }
    if not conn.autocommit:
        conn.rollback()
    return report


def _server_address(cur: Any) -> str | None:
    cur.execute("SELECT host(inet_server_addr())")
    row = cur.fetchone()
    return None if row is None or row[0] is None else str(row[0])


# -- Lambda entry point ---------------------------------------------------------------------

SecretReader = Callable[[str], str]


def read_secret_from_aws(secret_arn: str) -> str:
    """Secrets Manager value (through the VPC interface endpoint); boto3 ships with the runtime."""
    import boto3

    client = boto3.session.Session().client("secretsmanager")
    value: str = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    return value


def _master_credentials(raw: str) -> tuple[str, str]:
    try:
        data = json.loads(raw)
        return str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError):
        raise BootstrapError(
            "the master secret is not RDS's JSON {username, password}: is MASTER_SECRET_ARN the "
            "instance's master_user_secret?"
        ) from None


def _plain_password(raw: str) -> str:
    """The Datastream secret: a bare string, or JSON with a ``password`` field."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            return str(json.loads(text)["password"])
        except (ValueError, KeyError, TypeError):
            raise BootstrapError(
                "the Datastream secret is JSON without a 'password' field"
            ) from None
    return text


def _env(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise BootstrapError(f"environment variable {name} is not set")
    return value


def run(
    event: Mapping[str, Any],
    settings: BootstrapSettings,
    read_secret: SecretReader = read_secret_from_aws,
) -> dict[str, Any]:
    """Connect as the master user with verified TLS and run the requested action."""
    import psycopg2

    from hybridshop.db.connection import rds_ca_bundle_path

    action = event.get("action", "bootstrap") if isinstance(event, Mapping) else None
    if action not in ACTIONS:
        raise BootstrapError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action == "bootstrap" and not settings.datastream_secret_arn:
        raise BootstrapError("environment variable DATASTREAM_SECRET_ARN is not set")
    username, password = _master_credentials(read_secret(settings.master_secret_arn))
    conn = psycopg2.connect(
        host=settings.db_host,
        port=settings.db_port,
        dbname=settings.db_name,
        user=username,
        password=password,
        sslmode=settings.db_sslmode,
        sslrootcert=settings.db_sslrootcert or str(rds_ca_bundle_path()),
        connect_timeout=10,
        application_name="hybridshop-bootstrap",
    )
    try:
        if action == "check":
            return check_database(conn, settings)
        ds_password = _plain_password(read_secret(settings.datastream_secret_arn))
        version = event.get("password_version")
        return bootstrap_database(
            conn,
            settings,
            ds_password,
            password_version=str(version) if version else None,
            repair_slot=event.get("repair_lost_slot") is True,
        )
    finally:
        conn.close()


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda handler. Errors propagate: Terraform's invocation then fails with the message."""
    settings = BootstrapSettings.from_env(os.environ)
    logging.getLogger().setLevel(settings.log_level)
    return run(event if isinstance(event, Mapping) else {}, settings)
