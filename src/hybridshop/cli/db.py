"""``hybridshop db``: the catalog database (embedded PostgreSQL unless DATABASE_URL is set)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    import psycopg2.extensions

app = typer.Typer(
    help="The catalog database: migrations, demo data, the embedded server.", no_args_is_help=True
)
console = Console()

PG_PORT = typer.Option(
    None, "--pg-port", envvar="HYBRIDSHOP_PG_PORT", help="Port of the embedded PostgreSQL."
)


def _connect(pg_port: int | None) -> psycopg2.extensions.connection:
    import psycopg2

    from hybridshop.db.local import ensure_database

    database = ensure_database(pg_port, migrate=False, seed=False, stop_at_exit=True)
    return psycopg2.connect(database.dsn)


@app.command()
def migrate(pg_port: int | None = PG_PORT) -> None:
    """Apply pending SQL migrations (safe to run concurrently; idempotent)."""
    from hybridshop.db.migrate import apply_migrations

    conn = _connect(pg_port)
    try:
        applied = apply_migrations(conn)
    finally:
        conn.close()
    if applied:
        console.print(f"[green]applied[/] {', '.join(applied)}")
    else:
        console.print("database is up to date")


@app.command()
def seed(
    count: int = typer.Option(300, "--count", "-n", min=1, max=1_000_000, help="Products to add."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed, same catalog)."),
    force: bool = typer.Option(
        False, "--force", help="Add products even if the catalog is not empty."
    ),
    pg_port: int | None = PG_PORT,
) -> None:
    """Load a realistic demo catalog (deterministic with --seed)."""
    from hybridshop.db.migrate import apply_migrations
    from hybridshop.db.seed import generate_products, insert_products, seed_if_empty

    conn = _connect(pg_port)
    try:
        apply_migrations(conn)
        if force:
            inserted = insert_products(conn, generate_products(count, seed))
        else:
            inserted = seed_if_empty(conn, count, seed)
    finally:
        conn.close()
    if inserted:
        console.print(f"[green]added {inserted} products[/]")
    else:
        console.print("the catalog already has products; use --force to add more")


@app.command()
def status(pg_port: int | None = PG_PORT) -> None:
    """Where the database is, and what it holds."""
    from hybridshop.db.migrate import pending_migrations

    conn = _connect(pg_port)
    try:
        pending = pending_migrations(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT version(), current_setting('wal_level')")
            version, wal_level = cur.fetchall()[0]
            counts: dict[str, int] = {}
            if not pending:
                cur.execute("SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM orders)")
                counts["products"], counts["orders"] = cur.fetchall()[0]
        dsn = conn.dsn
    finally:
        conn.close()
    console.print(f"[bold]database[/] {dsn}")
    console.print(f"[bold]server[/]   {version.split(' on ')[0]}, wal_level={wal_level}")
    console.print(f"[bold]pending migrations[/] {', '.join(pending) or 'none'}")
    for table, n in counts.items():
        console.print(f"[bold]{table}[/] {n} rows")


@app.command()
def url(pg_port: int | None = PG_PORT) -> None:
    """Print the connection URL (starts the embedded server if needed)."""
    from hybridshop.db.local import ensure_database

    print(ensure_database(pg_port, migrate=False, seed=False).dsn)


@app.command()
def stop(pg_port: int | None = PG_PORT) -> None:
    """Stop the embedded PostgreSQL server of this state directory."""
    from hybridshop.db.local import embedded_server

    if os.environ.get("DATABASE_URL"):
        console.print("DATABASE_URL is set: that server is not ours to stop")
        raise typer.Exit(1)
    server = embedded_server(pg_port)
    if server.is_running():
        server.stop()
        console.print("embedded PostgreSQL stopped")
    else:
        console.print("embedded PostgreSQL is not running")
