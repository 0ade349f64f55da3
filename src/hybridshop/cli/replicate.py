"""``hybridshop replicate``: the local Datastream (PostgreSQL -> DuckDB in BigQuery layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hybridshop.db.replication import DEFAULT_PUBLICATION, DEFAULT_SLOT, DEFAULT_WAL_ALARM_MB

app = typer.Typer(
    help="Replicate the shop database into a DuckDB file laid out as Datastream's BigQuery tables.",
    invoke_without_command=True,
)


def _default_duckdb() -> Path:
    from hybridshop.settings import state_dir

    return state_dir() / "warehouse.duckdb"


def _source_dsn(pg_port: int | None) -> str:
    """``DATABASE_URL`` as is: a replicator never migrates or seeds a database it replicates
    (it writes nothing there but its slot, heartbeat messages and, when asked, the
    publication). Without it, the embedded shop database (created and migrated if needed)."""
    import os

    from hybridshop.db.local import ensure_database

    return os.environ.get("DATABASE_URL") or ensure_database(pg_port, stop_at_exit=True).dsn


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
    create_publication: bool = typer.Option(
        None,
        "--create-publication/--no-create-publication",
        help="Create the publication if missing [yes for the embedded database, no with "
        "DATABASE_URL: a replicator writes nothing to a source it was not asked to].",
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
    import os

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    path = duckdb_path or _default_duckdb()
    if create_publication is None:
        create_publication = not os.environ.get("DATABASE_URL")
    config = ReplicatorConfig(
        dsn=_source_dsn(pg_port),
        create_publication=create_publication,
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


@app.command("backfill")
def backfill_table(
    tables: list[str] = typer.Argument(
        ..., help="Tables to copy again: schema.table (or table in public)."
    ),
    duckdb_path: Path = typer.Option(None, "--duckdb"),
    slot: str = typer.Option(DEFAULT_SLOT, "--slot"),
    publication: str = typer.Option(DEFAULT_PUBLICATION, "--publication"),
    mode: str = typer.Option("merge", "--mode", help="As the warehouse was started with."),
    layout: str = typer.Option("single", "--layout", help="As the warehouse was started with."),
    dataset_prefix: str = typer.Option("", "--dataset-prefix"),
    timeout: float = typer.Option(
        600.0, "--timeout", help="Seconds to wait for a running replicator."
    ),
    pg_port: int = typer.Option(None, "--pg-port"),
) -> None:
    """Copy tables again (a stopped table after a schema change, or on request) without
    re-copying the others: snapshot + stream with no gap and no duplicate. A running
    replicator does it between batches; otherwise it is done here and the next run resumes."""
    import time

    from hybridshop.datastream.liveness import read_liveness
    from hybridshop.datastream.replicator import Replicator, ReplicatorConfig
    from hybridshop.datastream.requests import request_backfill
    from hybridshop.datastream.source import PrerequisiteError

    names = {t if "." in t else f"public.{t}" for t in tables}
    path = duckdb_path or _default_duckdb()
    live = read_liveness(path)
    if live["running"]:
        key = ", ".join(sorted(names))
        asked = time.time()
        request_backfill(path, names)
        typer.echo(f"asked the running replicator (pid {live.get('pid')}) to backfill {key}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.5)
            live = read_liveness(path)
            if float((live.get("backfilled") or {}).get(key, 0)) >= asked:
                typer.echo(f"backfilled {key}")
                return
            if not live["running"]:
                typer.echo(f"error: the replicator stopped: {live.get('last_error')}", err=True)
                raise typer.Exit(2)
        typer.echo(f"error: no backfill of {key} within {timeout:.0f}s", err=True)
        raise typer.Exit(2)
    config = ReplicatorConfig(
        dsn=_source_dsn(pg_port),
        duckdb_path=path,
        slot=slot,
        publication=publication,
        mode=mode,
        layout=layout,
        dataset_prefix=dataset_prefix,
        create_publication=False,
        progress=True,
    )
    try:
        rows = Replicator(config).backfill_now(names)
    except PrerequisiteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for name, count in rows.items():
        typer.echo(
            f"backfilled {name}: {count} rows (the replicator streams its changes from there)"
        )


@app.command("status")
def status(
    duckdb_path: Path = typer.Option(None, "--duckdb"),
    slot: str = typer.Option(DEFAULT_SLOT, "--slot"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    pg_port: int = typer.Option(None, "--pg-port"),
    wal_alarm_mb: float = typer.Option(
        DEFAULT_WAL_ALARM_MB,
        "--wal-alarm-mb",
        min=0,
        help="Alarm (and exit 1) when the slot retains more WAL than this many MB "
        "(as the deployed CloudWatch alarm on OldestReplicationSlotLag).",
    ),
) -> None:
    """Whether a replicator runs and its last error; slot, confirmed LSN, lag (bytes,
    seconds), WAL retained, rows per table, last commit, rejected changes.

    Exit code: 0 healthy, 1 rejected changes / stopped tables / failed replicator / WAL
    retained above the alarm, 2 error."""
    import json
    import time

    import psycopg2

    from hybridshop.datastream.status import (
        gather_status,
        status_exit_code,
        stopped_tables,
        wal_alarm,
    )

    path = duckdb_path or _default_duckdb()
    try:
        info = gather_status(
            _source_dsn(pg_port), path, slot, path.parent / "logs" / "replicator.log"
        )
    except psycopg2.Error as exc:
        typer.echo(f"error: cannot read the source: {str(exc).strip()}", err=True)
        raise typer.Exit(2) from None
    code = status_exit_code(info, wal_alarm_mb)
    alarm = wal_alarm(info["source"], wal_alarm_mb)
    info["alarms"] = [alarm] if alarm else []
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        raise typer.Exit(code)
    live, src, dst = info["replicator"], info["source"], info["destination"]
    if live.get("phase") is None:
        running = "no replicator has run on this warehouse"
    else:
        running = "running" if live["running"] else "not running"
        running += (
            f" ({live['phase']}, pid {live.get('pid')}, heartbeat {live['heartbeat_age_s']}s ago)"
        )
    lines = [f"ALARM                {alarm}"] if alarm else []
    lines.append(f"replicator process   {running}")
    if live.get("last_error"):
        when = live.get("last_error_at")
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)) if when else "?"
        lines.append(f"last error           {at} {live['last_error']}")
    for table, reason in stopped_tables(info).items():
        lines.append(f"stopped table        {table}: {reason}")
    if live.get("running"):
        for table, rows in (live.get("copying") or {}).items():
            lines.append(f"copying table        {table}: {rows} rows so far (while streaming)")
    lines.append(
        f"slot                 {src['slot']} ({'exists' if src.get('exists') else 'missing'})"
    )
    lines += _replicator_lines(src.get("replicator"), slot_exists=bool(src.get("exists")))
    for key in ("active", "confirmed_lsn", "lag_bytes", "lag_seconds", "wal_retained_bytes"):
        if key in src:
            lines.append(f"{key:<20} {src[key]}")
    for key in ("applied_lsn", "last_source_commit", "mode", "layout", "read_from"):
        if key in dst:
            lines.append(f"{key:<20} {dst[key]}")
    for table, count in dst.get("rows", {}).items():
        lines.append(f"rows {table:<15} {count}")
    rejected = dst.get("rejected_changes", 0)
    lines.append(f"rejected changes     {rejected} (table _datastream_errors in the warehouse)")
    for r in dst.get("rejected", [])[:10]:
        lines.append(
            f"  {r['lsn']} {r['change_type']} {r['table']} {r['key']} {r['column']}="
            f"{str(r['value'])[:40]!r}: {r['reason']}"
        )
    typer.echo("\n".join(lines))
    raise typer.Exit(code)


def _replicator_lines(rep: dict[str, Any] | None, *, slot_exists: bool = True) -> list[str]:
    """Whether a replicator holds the slot (and, when none does, its last words)."""
    if rep is None:
        return []
    if rep["running"]:
        return [
            f"replicator           running ({rep['application']}, server pid "
            f"{rep['walsender_pid']}, since {rep['since']})"
        ]
    why = (
        "the slot is inactive: changes pile up in the WAL"
        if slot_exists
        else "no slot yet: the source keeps no WAL for it"
    )
    out = [f"replicator           NOT RUNNING ({why})"]
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

    return ensure_database(pg_port, migrate=False, seed=False, stop_at_exit=True).dsn
