"""``hybridshop simulate``: shoppers and sellers through the public API, or months of history.

Live (default): visits through the HTTP API, as the shop sends them, at ``--rate`` requests/s;
a progress line while it runs and a summary table at the end. Exit status: 0, or 1 if the API
answered any 5xx, 2 if the simulation could not start or was refused, 130 after Ctrl-C.

``--backfill-days N``: N days of history written through the core functions with past
timestamps into the database the replicator reads (see ``hybridshop.simulate.backfill`` for
why it cannot go through API Gateway).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from hybridshop.settings import DEFAULT_API_PORT, DEFAULT_HOST, LOCAL_API_AUDIENCE

console = Console(stderr=True)
DEFAULT_API_URL = f"http://{DEFAULT_HOST}:{DEFAULT_API_PORT}"
EXIT_SERVER_ERRORS = 1
EXIT_ABORTED = 2
EXIT_INTERRUPTED = 130


def _duration(value: str | None) -> float | None:
    if value is None or value in ("", "0", "forever"):
        return None
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", value)
    if match is None:
        raise typer.BadParameter("use seconds or a unit, e.g. 60, 90s, 10m, 2h")
    amount = float(match.group(1))
    return amount * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _start(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use an ISO date-time such as 2026-11-28T18:00") from None


def _until(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use a date such as 2026-12-01") from None


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Madrid",
            param_hint="--timezone",
        ) from None


def _fail(message: str, code: int = EXIT_ABORTED) -> typer.Exit:
    console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def simulate(
    rate: float = typer.Option(
        20.0, "--rate", "-r", min=0.001, help="Requests per second (the mean, with --speedup)."
    ),
    duration: str | None = typer.Option(
        None, "--duration", "-d", help="How long: 60, 90s, 10m, 2h (default: until Ctrl-C)."
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help="Same seed, same requests (and same history); default: random, printed.",
    ),
    concurrency: int = typer.Option(
        8, "--concurrency", "-c", min=1, max=512, help="Workers, one connection each."
    ),
    speedup: float = typer.Option(
        0.0,
        "--speedup",
        min=0.0,
        help="Follow the daily pattern on a clock this many times faster (3600: an hour per "
        "second); 0: a steady rate.",
    ),
    start: str | None = typer.Option(
        None, "--start", help="Simulated clock at the start, ISO date-time (default: now)."
    ),
    timezone: str = typer.Option("UTC", "--timezone", help="The shoppers' time zone."),
    api_url: str = typer.Option(
        DEFAULT_API_URL,
        "--api-url",
        envvar="HYBRIDSHOP_API_URL",
        help="The API: the local gateway or a deployed API Gateway URL.",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="HYBRIDSHOP_API_TOKEN",
        help="Bearer token (default: the local issuer, Google's metadata server or gcloud).",
    ),
    audience: str = typer.Option(
        LOCAL_API_AUDIENCE,
        "--audience",
        envvar="HYBRIDSHOP_API_AUDIENCE",
        help="Audience of fetched ID tokens (Terraform's jwt_audience).",
    ),
    log: Path | None = typer.Option(
        None, "--log", help="Write every request and its status as JSON lines to this file."
    ),
    summary_json: Path | None = typer.Option(
        None, "--summary-json", help="Also write the summary as JSON to this file."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    backfill_days: int | None = typer.Option(
        None,
        "--backfill-days",
        min=1,
        help="Instead of live traffic: write this many days of history into the database.",
    ),
    orders_per_day: float = typer.Option(
        250.0, "--orders-per-day", min=1.0, help="History: orders on an average early day."
    ),
    until: str | None = typer.Option(
        None, "--until", help="History: ends at the start of this day, YYYY-MM-DD (default: today)."
    ),
    yes_i_mean_it: bool = typer.Option(
        False,
        "--yes-i-mean-it",
        help="History: allow writing to a database that is not on this machine.",
    ),
    pg_port: int | None = typer.Option(
        None, "--pg-port", envvar="HYBRIDSHOP_PG_PORT", help="History: embedded PostgreSQL port."
    ),
) -> None:
    """Simulate shoppers and sellers through the API, or write months of history."""
    _check_timezone(timezone)
    if seed is None:
        seed = random.SystemRandom().randrange(1, 1_000_000)
    if backfill_days is not None:
        _backfill(
            backfill_days, seed, orders_per_day, _until(until), timezone, yes_i_mean_it, pg_port,
            summary_json, quiet,
        )  # fmt: skip
        return
    _live(
        rate, _duration(duration), seed, concurrency, speedup, _start(start), timezone, api_url,
        token, audience, log, summary_json, quiet,
    )  # fmt: skip


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")


def _live(
    rate: float,
    duration: float | None,
    seed: int,
    concurrency: int,
    speedup: float,
    start: datetime | None,
    timezone: str,
    api_url: str,
    token: str | None,
    audience: str,
    log: Path | None,
    summary_json: Path | None,
    quiet: bool,
) -> None:
    from hybridshop.simulate.client import SimulationAborted
    from hybridshop.simulate.live import Simulation, SimulationConfig
    from hybridshop.simulate.report import LiveProgress, summary_notes, summary_table

    try:
        sim = Simulation(
            SimulationConfig(
                api_url=api_url,
                rate=rate,
                duration=duration,
                seed=seed,
                concurrency=concurrency,
                speedup=speedup,
                start=start,
                timezone=timezone,
                log_path=log,
                token=token,
                audience=audience,
            )
        )
    except SimulationAborted as exc:
        raise _fail(str(exc)) from None
    previous = signal.signal(signal.SIGINT, lambda *_: sim.stop())
    try:
        with console.status(f"checking the API at {api_url}..."):
            sim.connect()
        console.print(
            f"simulating against {api_url}: {rate:g} requests/s"
            + (f" for {duration:g}s" if duration else " until Ctrl-C")
            + f", {concurrency} workers, seed {seed}",
            highlight=False,
        )
        clock = sim.sim_now if speedup > 0 else None
        with LiveProgress(console, duration, enabled=not quiet, clock=clock) as progress:
            summary = sim.run(on_tick=progress.tick)
    except SimulationAborted as exc:
        raise _fail(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    console.print(summary_table(summary))
    for note in summary_notes(summary):
        console.print(note, highlight=False, soft_wrap=True)
    _write_json(summary_json, summary.to_dict())
    if summary.aborted:
        raise typer.Exit(EXIT_ABORTED)
    if summary.server_errors:
        raise typer.Exit(EXIT_SERVER_ERRORS)
    if summary.stopped_by_user:
        raise typer.Exit(EXIT_INTERRUPTED)


def _backfill(
    days: int,
    seed: int,
    orders_per_day: float,
    until: date | None,
    timezone: str,
    confirmed: bool,
    pg_port: int | None,
    summary_json: Path | None,
    quiet: bool,
) -> None:
    import psycopg2
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from hybridshop.db.local import ensure_database
    from hybridshop.simulate.backfill import (
        BackfillConfig,
        BackfillRefused,
        backfill,
        is_local_database,
    )
    from hybridshop.simulate.report import backfill_table

    dsn = os.environ.get("DATABASE_URL")
    iam = os.environ.get("DB_AUTH_MODE", "").lower() == "iam"
    try:
        remote = bool(dsn) and not is_local_database(dsn or "")
    except psycopg2.ProgrammingError:
        raise _fail("DATABASE_URL is not a PostgreSQL URL (postgresql://user@host/db)") from None
    if iam or remote:
        where = "an RDS database (DB_AUTH_MODE=iam)" if iam else "a database on another host"
        if not confirmed:
            raise _fail(
                f"refusing to write history into {where}: it may be production; "
                "pass --yes-i-mean-it if you really want months of simulated orders there"
            )
    config = BackfillConfig(
        days=days, seed=seed, orders_per_day=orders_per_day, until=until, timezone=timezone
    )
    if iam:
        from hybridshop.db.connection import DatabaseConfig, connect

        def open_connection() -> Any:
            return connect(DatabaseConfig.from_env())
    else:
        local_dsn = ensure_database(pg_port, stop_at_exit=True).dsn

        def open_connection() -> Any:
            return psycopg2.connect(local_dsn, application_name="hybridshop-history")

    conn = open_connection()
    stopping = {"yes": False}

    def _stop(*_: object) -> None:
        stopping["yes"] = True

    previous = signal.signal(signal.SIGINT, _stop)
    console.print(
        f"writing {days} days of history ({config.first_date()} .. {config.end_date()}, "
        f"seed {seed}), in batches of about {config.batch_rows:,} rows",
        highlight=False,
    )
    try:
        with Progress(
            *Progress.get_default_columns()[:1],
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            task = progress.add_task("days", total=days)
            result = backfill(
                conn,
                config,
                on_day=lambda _i, r: progress.update(task, completed=r.days),
                should_stop=lambda: stopping["yes"],
                connect=open_connection,  # listings and purchases on two backends at once
            )
    except BackfillRefused as exc:
        raise _fail(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        conn.close()
    console.print(backfill_table(result))
    _write_json(summary_json, {"seed": seed, **result.to_dict()})
    if stopping["yes"]:
        console.print(
            f"stopped by Ctrl-C after {result.days} days (every day counted is committed)"
        )
        raise typer.Exit(EXIT_INTERRUPTED)
