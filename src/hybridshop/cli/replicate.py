"""``hybridshop replicate``: the local Datastream (PostgreSQL -> DuckDB in BigQuery layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    path = duckdb_path or _default_duckdb()
    info = gather_status(_source_dsn(pg_port), path, slot, path.parent / "logs" / "replicator.log")
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    src, dst = info["source"], info["destination"]
    lines = [f"slot                 {src['slot']} ({'exists' if src.get('exists') else 'missing'})"]
    lines += _replicator_lines(src.get("replicator"))
    for key in ("active", "confirmed_lsn", "lag_bytes", "lag_seconds", "wal_retained_bytes"):
        if key in src:
            lines.append(f"{key:<20} {src[key]}")
    for key in ("applied_lsn", "last_source_commit", "mode", "layout", "read_from"):
        if key in dst:
            lines.append(f"{key:<20} {dst[key]}")
    for table, count in dst.get("rows", {}).items():
        lines.append(f"rows {table:<15} {count}")
    typer.echo("\n".join(lines))


def _replicator_lines(rep: dict[str, Any] | None) -> list[str]:
    """Whether a replicator holds the slot (and, when none does, its last words)."""
    if rep is None:
        return []
    if rep["running"]:
        return [
            f"replicator           running ({rep['application']}, server pid "
            f"{rep['walsender_pid']}, since {rep['since']})"
        ]
    out = ["replicator           NOT RUNNING (the slot is inactive: changes pile up in the WAL)"]
    last = rep.get("last_output") or []
    if last:
        out.append(f"last output          {rep['log']}:")
        out += [f"  {line}" for line in last]
    return out


@app.command("verify")
def verify(
    duckdb_path: Path = typer.Option(
        None, "--duckdb", help="Warehouse [<state>/warehouse.duckdb]."
    ),
    slot: str = typer.Option(DEFAULT_SLOT, "--slot", help="Whose applied LSN to compare at."),
    publication: str = typer.Option(
        None, "--publication", help="Publication to compare (default: the warehouse's own)."
    ),
    dataset_prefix: str = typer.Option("", "--dataset-prefix", help="Per-schema layout prefix."),
    table: list[str] = typer.Option([], "--table", help="Only this table (repeatable)."),
    wait: float = typer.Option(30.0, "--wait", help="Seconds to wait for a running replicator."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    pg_port: int = typer.Option(
        None, "--pg-port", help="Embedded PostgreSQL port (ignored with DATABASE_URL)."
    ),
) -> None:
    """Compare source and warehouse row by row (counts, then hashes by key range); exit 1 on a
    difference, 2 if the check cannot run."""
    from rich.console import Console

    from hybridshop.datastream import verify as check

    options = check.VerifyOptions(
        slot=slot,
        publication=publication,
        dataset_prefix=dataset_prefix,
        wait_timeout_s=wait,
        tables=tuple(table),
    )
    try:
        with Console(stderr=True).status(
            "comparing the source with the warehouse (counts, then row hashes by key range)..."
        ):
            report = check.verify(_verify_dsn(pg_port), duckdb_path or _default_duckdb(), options)
    except check.VerifyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        import json

        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        check.render(report, Console())
    raise typer.Exit(0 if report.ok else 1)


def _verify_dsn(pg_port: int | None) -> str:
    """The source to compare with, read-only: never migrated or seeded."""
    from hybridshop.db.local import ensure_database

    return ensure_database(pg_port, migrate=False, seed=False).dsn
