"""``hybridshop replicate``: the local Datastream (PostgreSQL -> DuckDB in BigQuery layout)."""

from __future__ import annotations

from pathlib import Path

import typer

from hybridshop.db.replication import DEFAULT_PUBLICATION, DEFAULT_SLOT

app = typer.Typer(
    help="Replicate the shop database into a DuckDB file laid out as Datastream's BigQuery tables.",
    invoke_without_command=True,
)


def _default_duckdb() -> Path:
    from hybridshop.settings import state_dir

    return state_dir() / "warehouse.duckdb"


def _source_dsn(pg_port: int | None) -> str:
    from hybridshop.db.local import ensure_database

    return ensure_database(pg_port).dsn


@app.callback()
def replicate(
    ctx: typer.Context,
    duckdb_path: Path = typer.Option(
        None, "--duckdb", help="Destination file [<state>/warehouse.duckdb]."
    ),
    slot: str = typer.Option(DEFAULT_SLOT, "--slot", help="Logical replication slot (pgoutput)."),
    publication: str = typer.Option(DEFAULT_PUBLICATION, "--publication"),
    mode: str = typer.Option(
        "merge", "--mode", help="merge (mirror, default) or append-only (change log)."
    ),
    layout: str = typer.Option(
        "single", "--layout", help="single (<schema>_<table>) or per-schema datasets."
    ),
    dataset_prefix: str = typer.Option(
        "", "--dataset-prefix", help="Prefix of per-schema datasets."
    ),
    proto_version: int = typer.Option(
        1, "--proto-version", help="pgoutput version: 1, or 2 (streams large transactions)."
    ),
    resync: bool = typer.Option(False, "--resync", help="Drop the slot and backfill again."),
    no_snapshot: bool = typer.Option(
        False, "--no-reader-copy", help="Do not publish <name>.read.duckdb for other processes."
    ),
    pg_port: int = typer.Option(
        None, "--pg-port", help="Embedded PostgreSQL port (ignored with DATABASE_URL)."
    ),
) -> None:
    """Run the replicator in the foreground (Ctrl-C stops it after the current batch)."""
    if ctx.invoked_subcommand is not None:
        return
    import logging
    import signal
    import threading

    from hybridshop.datastream.replicator import Replicator, ReplicatorConfig
    from hybridshop.datastream.service import snapshot_path_for
    from hybridshop.datastream.source import PrerequisiteError

    if mode not in ("merge", "append-only") or layout not in ("single", "per-schema"):
        raise typer.BadParameter("--mode is merge|append-only, --layout is single|per-schema")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    path = duckdb_path or _default_duckdb()
    config = ReplicatorConfig(
        dsn=_source_dsn(pg_port),
        duckdb_path=path,
        slot=slot,
        publication=publication,
        mode=mode,
        layout=layout,
        dataset_prefix=dataset_prefix,
        proto_version=proto_version,
        resync=resync,
        snapshot_path=None if no_snapshot else snapshot_path_for(path),
        progress=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    typer.echo(f"replicating into {path} (slot {slot}, {mode}, layout {layout}); Ctrl-C to stop")
    try:
        Replicator(config).run(stop)
    except PrerequisiteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("status")
def status(
    duckdb_path: Path = typer.Option(None, "--duckdb"),
    slot: str = typer.Option(DEFAULT_SLOT, "--slot"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    pg_port: int = typer.Option(None, "--pg-port"),
) -> None:
    """Slot, confirmed LSN, lag (bytes, seconds), WAL retained, rows per table, last commit."""
    import json

    from hybridshop.datastream.status import gather_status

    info = gather_status(_source_dsn(pg_port), duckdb_path or _default_duckdb(), slot)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    src, dst = info["source"], info["destination"]
    lines = [f"slot                 {src['slot']} ({'exists' if src.get('exists') else 'missing'})"]
    for key in ("active", "confirmed_lsn", "lag_bytes", "lag_seconds", "wal_retained_bytes"):
        if key in src:
            lines.append(f"{key:<20} {src[key]}")
    for key in ("applied_lsn", "last_source_commit", "mode", "layout", "read_from"):
        if key in dst:
            lines.append(f"{key:<20} {dst[key]}")
    for table, count in dst.get("rows", {}).items():
        lines.append(f"rows {table:<15} {count}")
    typer.echo("\n".join(lines))
