"""The database-bootstrap Lambda against the real embedded PostgreSQL.

``rds_iam`` and ``rds_replication`` exist only on Amazon RDS; these tests create NOLOGIN
stand-in roles with those names in the test cluster so the GRANTs run as they do on RDS.
Secrets Manager is unreachable here: ``run`` gets a stand-in secret reader (a dict lookup).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import psycopg2
import psycopg2.errors
import psycopg2.extras
import pytest

from hybridshop.core import catalog
from hybridshop.core.models import NewProduct, PurchaseRequest
from hybridshop.lambda_functions.bootstrap import (
    BootstrapError,
    BootstrapSettings,
    bootstrap_database,
    check_database,
    run,
)

PASSWORD = "a-datastream-password-0123456789"


@pytest.fixture
def rds_like(pg, database_url: str) -> Iterator[tuple[str, BootstrapSettings]]:  # type: ignore[no-untyped-def]
    """A fresh database with RDS's stand-in roles, unique role/slot names, slot dropped after."""
    admin = psycopg2.connect(pg.dsn("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        for role in ("rds_iam", "rds_replication"):
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                # stand-in for the RDS role; another session may create it at the same time
                with contextlib.suppress(psycopg2.errors.DuplicateObject):
                    cur.execute(f"CREATE ROLE {role} NOLOGIN")
    suffix = uuid.uuid4().hex[:8]
    settings = BootstrapSettings(
        app_user=f"app_{suffix}",
        datastream_user=f"ds_{suffix}",
        publication=f"pub_{suffix}",
        slot=f"slot_{suffix}",
    )
    yield database_url, settings
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            (settings.slot,),
        )
    admin.close()


def _member(cur, role: str, group: str) -> bool:  # type: ignore[no-untyped-def]
    cur.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (role, group))
    return bool(cur.fetchone()[0])


def test_bootstrap_creates_users_publication_and_slot(rds_like) -> None:  # type: ignore[no-untyped-def]
    dsn, settings = rds_like
    conn = psycopg2.connect(dsn)
    report = bootstrap_database(conn, settings, PASSWORD)
    assert report["app_user_created"] and report["datastream_user_created"]
    assert report["replication_slot_created"] and report["publication_changed"]
    assert report["migrations_applied"] == []  # the fixture's database is already migrated
    with conn.cursor() as cur:
        assert _member(cur, settings.app_user, "rds_iam")
        assert not _member(cur, settings.datastream_user, "rds_iam")
        assert _member(cur, settings.datastream_user, "rds_replication")
        cur.execute("SELECT current_user")
        master = cur.fetchone()[0]
        assert not _member(cur, master, "rds_iam") or master == "postgres"
        cur.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1",
            (settings.publication,),
        )
        assert [r[0] for r in cur.fetchall()] == ["orders", "products"]
        cur.execute(
            "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = %s",
            (settings.slot,),
        )
        assert cur.fetchone() == ("pgoutput", urlparse(dsn).path.lstrip("/"))
        cur.execute(
            "SELECT has_table_privilege(%s, 'public.products', 'SELECT')",
            (settings.datastream_user,),
        )
        assert cur.fetchone()[0]
        cur.execute(
            "SELECT has_table_privilege(%s, 'public.products', 'INSERT')",
            (settings.datastream_user,),
        )
        assert not cur.fetchone()[0]
    conn.close()


def test_app_user_can_run_the_catalog_but_not_delete(rds_like) -> None:  # type: ignore[no-untyped-def]
    dsn, settings = rds_like
    conn = psycopg2.connect(dsn)
    bootstrap_database(conn, settings, PASSWORD)
    conn.close()
    # The test cluster trusts local connections, so we can log in as the app user directly.
    app = psycopg2.connect(dsn, user=settings.app_user)
    product = catalog.add_product(app, NewProduct(name="Lamp", price=Decimal("19.99")))
    order, _ = catalog.purchase(app, product.id, PurchaseRequest(channel="web"))
    assert order.product_id == product.id
    with app.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("DELETE FROM products")
    app.rollback()
    with app.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("CREATE TABLE sneaky (id int)")
    app.close()


def test_bootstrap_is_idempotent_and_follows_the_secret(rds_like) -> None:  # type: ignore[no-untyped-def]
    dsn, settings = rds_like
    conn = psycopg2.connect(dsn)
    bootstrap_database(conn, settings, PASSWORD)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (settings.datastream_user,)
        )
        before = cur.fetchone()[0]
    conn.rollback()
    again = bootstrap_database(conn, settings, PASSWORD + "-rotated")
    assert not again["app_user_created"] and not again["datastream_user_created"]
    assert not again["replication_slot_created"] and not again["publication_changed"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (settings.datastream_user,)
        )
        assert cur.fetchone()[0] != before
        cur.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (settings.slot,)
        )
        assert cur.fetchone()[0] == 1
    state = check_database(conn, settings)
    assert state == {
        "action": "check",
        "pending_migrations": [],
        "app_user_has_rds_iam": True,
        "datastream_user_has_rds_replication": True,
        "publication_exists": True,
        "slot_exists": True,
        "slot_active": False,
        "slot_retained_wal_bytes": state["slot_retained_wal_bytes"],
        "slot_wal_status": "reserved",
        "server_address": state["server_address"],
    }
    assert state["slot_retained_wal_bytes"] >= 0
    conn.close()


def test_bootstrap_migrates_an_empty_database(pg, rds_like) -> None:  # type: ignore[no-untyped-def]
    from conftest import create_database

    _, settings = rds_like
    dsn = create_database(pg, migrated=False)
    conn = psycopg2.connect(dsn)
    try:
        report = bootstrap_database(conn, settings, PASSWORD)
        from hybridshop.db.migrate import available_migrations

        assert report["migrations_applied"] == [m.version for m in available_migrations()]
    finally:
        with conn.cursor() as cur:
            conn.autocommit = True
            cur.execute("SELECT pg_drop_replication_slot(%s)", (settings.slot,))
        conn.close()


def test_short_password_and_bad_names_are_refused(rds_like) -> None:  # type: ignore[no-untyped-def]
    dsn, settings = rds_like
    conn = psycopg2.connect(dsn)
    with pytest.raises(BootstrapError, match="shorter than 16"):
        bootstrap_database(conn, settings, "short")
    conn.close()
    with pytest.raises(BootstrapError, match="lowercase SQL identifier"):
        BootstrapSettings(app_user='x"; DROP TABLE products; --')
    with pytest.raises(BootstrapError, match="different roles"):
        BootstrapSettings(app_user="same", datastream_user="same")


def test_run_reads_secrets_and_dispatches(rds_like) -> None:  # type: ignore[no-untyped-def]
    dsn, settings = rds_like
    url = urlparse(dsn)
    secrets = {  # stand-in for Secrets Manager (unreachable from here)
        "arn:master": json.dumps(
            {"username": url.username or "postgres", "password": "unused-trust-auth"}
        ),
        "arn:datastream": PASSWORD,
    }
    env = {
        "DB_HOST": url.hostname or "127.0.0.1",
        "DB_PORT": str(url.port),
        "DB_NAME": url.path.lstrip("/"),
        "DB_SSLMODE": "disable",  # the local server has no TLS; RDS forces it (rds.force_ssl)
        "MASTER_SECRET_ARN": "arn:master",
        "DATASTREAM_SECRET_ARN": "arn:datastream",
        "APP_DB_USER": settings.app_user,
        "DATASTREAM_DB_USER": settings.datastream_user,
        "PUBLICATION": settings.publication,
        "REPLICATION_SLOT": settings.slot,
    }
    config = BootstrapSettings.from_env(env)
    report = run({"action": "bootstrap"}, config, read_secret=secrets.__getitem__)
    assert report["app_user"] == settings.app_user and report["replication_slot_created"]
    assert run({"action": "check"}, config, read_secret=secrets.__getitem__)["slot_exists"] is True
    with pytest.raises(BootstrapError, match="action must be"):
        run({"action": "drop_everything"}, config, read_secret=secrets.__getitem__)
    without_ds = {k: v for k, v in env.items() if k != "DATASTREAM_SECRET_ARN"}
    check_only = BootstrapSettings.from_env(without_ds)  # "check" does not need it
    assert run({"action": "check"}, check_only, read_secret=secrets.__getitem__)
    with pytest.raises(BootstrapError, match="DATASTREAM_SECRET_ARN"):
        run({"action": "bootstrap"}, check_only, read_secret=secrets.__getitem__)
    secrets["arn:master"] = "not json"
    with pytest.raises(BootstrapError, match="master secret"):
        run({}, config, read_secret=secrets.__getitem__)
    with pytest.raises(BootstrapError, match="MASTER_SECRET_ARN"):
        BootstrapSettings.from_env({k: v for k, v in env.items() if k != "MASTER_SECRET_ARN"})


class _Statements(io.StringIO):
    """Every statement psycopg2 sends on a LoggingConnection (what the server would log)."""


def _logging_connection(dsn: str) -> tuple[Any, _Statements]:
    log = _Statements()
    conn = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LoggingConnection)
    conn.initialize(log)
    return conn, log


def _rolpassword(conn, role: str) -> str:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        value = cur.fetchone()[0]
    conn.rollback()
    return str(value)


def test_password_travels_as_a_scram_verifier_and_only_when_its_version_changes(rds_like) -> None:  # type: ignore[no-untyped-def]
    """D2: with log_statement = ddl every ALTER ROLE lands in CloudWatch: no literal password,
    and no ALTER at all when the secret's version is the one already set."""
    dsn, settings = rds_like
    conn, log = _logging_connection(dsn)
    first = bootstrap_database(conn, settings, PASSWORD, password_version="v1")
    assert first["datastream_user_created"] and first["datastream_password_set"]
    verifier = _rolpassword(conn, settings.datastream_user)
    assert verifier.startswith("SCRAM-SHA-256$")
    same = bootstrap_database(conn, settings, PASSWORD, password_version="v1")
    assert not same["datastream_password_set"]
    assert _rolpassword(conn, settings.datastream_user) == verifier
    rotated = bootstrap_database(conn, settings, PASSWORD + "-rotated", password_version="v2")
    assert rotated["datastream_password_set"]
    assert _rolpassword(conn, settings.datastream_user) != verifier
    sent = log.getvalue()
    assert PASSWORD not in sent, "a literal password reached the server"
    role_statements = [line for line in sent.splitlines() if "ROLE" in line and "PASSWORD" in line]
    assert len(role_statements) == 2  # CREATE (v1) and ALTER (v2); nothing for the re-run
    assert all("SCRAM-SHA-256$" in line for line in role_statements)
    conn.close()


def _invalidate_slot(admin, slot: str) -> None:  # type: ignore[no-untyped-def]
    """Make PostgreSQL itself invalidate ``slot``: a tiny max_slot_wal_keep_size, WAL beyond
    it, a checkpoint. Restored right after."""
    with admin.cursor() as cur:
        cur.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        cur.execute("SELECT pg_reload_conf()")
        try:
            for _ in range(40):
                cur.execute(
                    "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                )
                if cur.fetchone()[0] == "lost":
                    return
                for _ in range(3):
                    cur.execute("SELECT pg_logical_emit_message(false, 'test', repeat('x', 4096))")
                    cur.execute("SELECT pg_switch_wal()")
                cur.execute("CHECKPOINT")
                time.sleep(0.05)
            raise AssertionError("PostgreSQL did not invalidate the slot")
        finally:
            cur.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            cur.execute("SELECT pg_reload_conf()")


def test_lost_slot_is_reported_and_repaired_only_when_asked(pg, rds_like) -> None:  # type: ignore[no-untyped-def]
    """D14: a slot past max_slot_wal_keep_size is 'lost' for good; re-running the bootstrap
    used to report it as present and fine."""
    dsn, settings = rds_like
    conn = psycopg2.connect(dsn)
    bootstrap_database(conn, settings, PASSWORD, password_version="v1")
    admin = psycopg2.connect(pg.dsn("postgres"))
    admin.autocommit = True
    try:
        _invalidate_slot(admin, settings.slot)
    finally:
        admin.close()
    assert check_database(conn, settings)["slot_wal_status"] == "lost"
    report = bootstrap_database(conn, settings, PASSWORD, password_version="v1")
    assert report["replication_slot_status"] == "lost"
    assert not report["replication_slot_repaired"] and not report["replication_slot_created"]
    repaired = bootstrap_database(conn, settings, PASSWORD, password_version="v1", repair_slot=True)
    assert repaired["replication_slot_repaired"] and repaired["replication_slot_created"]
    assert repaired["replication_slot_status"] == "reserved"
    conn.close()


def test_run_passes_the_version_and_the_repair_flag(rds_like) -> None:  # type: ignore[no-untyped-def]
    dsn, settings = rds_like
    url = urlparse(dsn)
    secrets = {
        "arn:master": json.dumps({"username": url.username or "postgres", "password": "x"}),
        "arn:datastream": PASSWORD,
    }
    env = {
        "DB_HOST": url.hostname or "127.0.0.1",
        "DB_PORT": str(url.port),
        "DB_NAME": url.path.lstrip("/"),
        "DB_SSLMODE": "disable",
        "MASTER_SECRET_ARN": "arn:master",
        "DATASTREAM_SECRET_ARN": "arn:datastream",
        "APP_DB_USER": settings.app_user,
        "DATASTREAM_DB_USER": settings.datastream_user,
        "PUBLICATION": settings.publication,
        "REPLICATION_SLOT": settings.slot,
    }
    event = {"action": "bootstrap", "password_version": "v7", "repair_lost_slot": True}
    config = BootstrapSettings.from_env(env)
    assert run(event, config, read_secret=secrets.__getitem__)["datastream_password_set"]
    again = run(event, config, read_secret=secrets.__getitem__)
    assert not again["datastream_password_set"] and not again["replication_slot_repaired"]
    assert run({"action": "check"}, config, read_secret=secrets.__getitem__)["server_address"]
