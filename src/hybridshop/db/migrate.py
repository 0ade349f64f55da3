"""Versioned SQL migrations: plain files applied in order, recorded, safe to run concurrently.

Files live in ``db/migrations`` as ``NNNN_name.sql``. All pending files are applied in ONE
transaction that first takes a transaction-scoped advisory lock, so two processes running
``hybridshop db migrate`` at once serialise, and the second one finds nothing left to do.
An applied file whose content changed is an error: migrations are append-only history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

# Arbitrary but fixed: every hybridshop process that migrates takes this advisory lock.
MIGRATION_LOCK_ID = 0x68796272  # "hybr"


class MigrationError(RuntimeError):
    """A migration file was edited after it was applied, or one failed to apply."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migration files shipped in the package, in version order."""
    folder = resources.files("hybridshop.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        filename = entry.name
        if not filename.endswith(".sql"):
            continue
        version, _, rest = filename.removesuffix(".sql").partition("_")
        if not version.isdigit():
            raise MigrationError(f"migration file {filename!r} must be named NNNN_name.sql")
        found.append(Migration(version=version, name=rest, sql=entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: int(m.version))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


def apply_migrations(conn: Any) -> list[str]:
    """Apply pending migrations on a psycopg2 connection; return the versions applied.

    The connection's autocommit setting is restored afterwards.
    """
    previous_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
            cur.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    text PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            cur.execute("SELECT version, checksum FROM schema_migrations")
            applied = dict(cur.fetchall())
            done: list[str] = []
            for migration in available_migrations():
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version}_{migration.name} was changed after it "
                            "was applied; add a new migration instead of editing an old one"
                        )
                    continue
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                done.append(migration.version)
        conn.commit()
        return done
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = previous_autocommit


def pending_migrations(conn: Any) -> list[str]:
    """Versions not yet applied (without applying anything)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        exists = cur.fetchone()[0]
        applied: set[str] = set()
        if exists:
            cur.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in cur.fetchall()}
    if not conn.autocommit:
        conn.rollback()
    return [m.version for m in available_migrations() if m.version not in applied]
