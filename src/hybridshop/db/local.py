"""The database the local commands use (``up``, ``api``, ``db``, ``replicate``): the
embedded server of the state directory, or ``DATABASE_URL``; migrated and seeded.

Embedded by default, real when configured: with ``DATABASE_URL`` set we use that server and
never start our own.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass

import psycopg2

from hybridshop.db.embedded import EmbeddedPostgres
from hybridshop.db.migrate import apply_migrations
from hybridshop.settings import DEFAULT_PG_PORT, env_int, state_dir


@dataclass
class Database:
    """A database the stack can use: its DSN and, if we started it, the embedded server."""

    dsn: str
    server: EmbeddedPostgres | None = None

    @property
    def embedded(self) -> bool:
        return self.server is not None


def embedded_server(pg_port: int | None = None) -> EmbeddedPostgres:
    """The embedded server of this state directory (not started)."""
    port = pg_port or env_int("HYBRIDSHOP_PG_PORT", DEFAULT_PG_PORT)
    return EmbeddedPostgres(base_dir=state_dir() / "postgres", port=port)


def ensure_database(
    pg_port: int | None = None,
    *,
    migrate: bool = True,
    seed: bool = True,
    stop_at_exit: bool = False,
) -> Database:
    """Use ``DATABASE_URL`` or start/reuse the embedded server; migrate; seed an empty catalog.

    ``stop_at_exit``: a command that runs and ends (``replicate status``, ``db migrate``…)
    stops the embedded server when its process exits if it had to start it, instead of
    leaving a PostgreSQL running in the background; one already running is left as found
    (``db url`` and ``up --keep-db`` leave it running on purpose; ``db stop`` stops it)."""
    dsn = os.environ.get("DATABASE_URL")
    server = None
    if not dsn:
        server = embedded_server(pg_port)
        was_running = server.is_running()
        dsn = server.start()
        if stop_at_exit and not was_running:
            atexit.register(_stop_quietly, server)
    if migrate:
        conn = psycopg2.connect(dsn)
        try:
            apply_migrations(conn)
            if seed:
                from hybridshop.db.seed import seed_if_empty

                seed_if_empty(conn)
        finally:
            conn.close()
    return Database(dsn=dsn, server=server)


def _stop_quietly(server: EmbeddedPostgres) -> None:
    with contextlib.suppress(Exception):  # exiting anyway: a failed stop must not mask why
        server.stop()
