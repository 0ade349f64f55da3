"""Migrations: ordered, recorded, idempotent, safe when several processes run them at once."""

from __future__ import annotations

import subprocess
import sys

import psycopg2
import pytest

from conftest import create_database  # type: ignore[import-not-found]
from hybridshop.db.embedded import EmbeddedPostgres
from hybridshop.db.migrate import (
    Migration,
    MigrationError,
    apply_migrations,
    available_migrations,
    pending_migrations,
)


def _tables(dsn: str) -> set[str]:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = {r[0] for r in cur.fetchall()}
    conn.close()
    return names


def test_apply_then_nothing_pending(pg: EmbeddedPostgres) -> None:
    dsn = create_database(pg, migrated=False)
    conn = psycopg2.connect(dsn)
    assert pending_migrations(conn) == [m.version for m in available_migrations()]
    assert apply_migrations(conn) == [m.version for m in available_migrations()]
    assert apply_migrations(conn) == []
    assert pending_migrations(conn) == []
    conn.close()
    assert {"products", "orders", "schema_migrations"} <= _tables(dsn)


def test_every_table_has_a_primary_key_and_default_replica_identity(pg: EmbeddedPostgres) -> None:
    conn = psycopg2.connect(create_database(pg))
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT c.relname, c.relreplident,
                   EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
            """
        )
        rows = cur.fetchall()
    conn.close()
    assert rows
    for name, identity, has_pk in rows:
        assert has_pk, f"{name} has no primary key"
        assert identity == "d", f"{name} replica identity is {identity!r}, expected DEFAULT"


def test_concurrent_migrators_serialise(pg: EmbeddedPostgres) -> None:
    """Four processes migrate one empty database at once: exactly one applies each file."""
    dsn = create_database(pg, migrated=False)
    script = (
        "import sys, psycopg2\n"
        "from hybridshop.db.migrate import apply_migrations\n"
        "c = psycopg2.connect(sys.argv[1]); print(','.join(apply_migrations(c)))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, dsn], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    applied = [o for o in outputs if o]
    assert applied == [",".join(m.version for m in available_migrations())]
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM schema_migrations")
        assert cur.fetchone()[0] == len(available_migrations())
    conn.close()


def test_an_edited_migration_is_refused(
    pg: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = psycopg2.connect(create_database(pg))
    original = available_migrations()
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in original]
    monkeypatch.setattr("hybridshop.db.migrate.available_migrations", lambda: edited)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(conn)
    conn.close()


def test_a_failing_migration_leaves_nothing_behind(
    pg: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = create_database(pg, migrated=False)
    broken = [
        *available_migrations(),
        Migration("9999", "broken", "CREATE TABLE x (id int PRIMARY KEY); SELEC 1;"),
    ]
    monkeypatch.setattr("hybridshop.db.migrate.available_migrations", lambda: broken)
    conn = psycopg2.connect(dsn)
    with pytest.raises(psycopg2.errors.SyntaxError):
        apply_migrations(conn)
    conn.close()
    assert "products" not in _tables(dsn)  # all pending files are one transaction
