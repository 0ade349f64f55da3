"""What the simulator shows: a live progress line while it runs, a summary table at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridshop.simulate.backfill import BackfillResult
from hybridshop.simulate.live import Summary


def _money(amount: Any) -> str:
    return f"€{amount:,.2f}"


def _errors(summary: Summary) -> str:
    if not summary.error_codes:
        return "no errors"
    top = summary.error_codes.most_common(4)
    return ", ".join(f"{code}: {n}" for code, n in top)


class LiveProgress:
    """A rich progress bar over the run's duration (or a spinner when it has none)."""

    def __init__(
        self,
        console: Console,
        duration: float | None,
        enabled: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.enabled = enabled
        self.clock = clock  # the simulated clock, shown when it runs faster (--speedup)
        self.duration = duration
        self.started = time.perf_counter()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]simulating[/]"),
            BarColumn(bar_width=None if duration else 10),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self.task = self.progress.add_task("run", total=duration or None, line="")

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def tick(self, summary: Summary) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        rate = summary.total_requests / elapsed if elapsed else 0
        line = (
            f"{summary.total_requests:,} req ({rate:,.0f}/s) · [green]{summary.orders:,} orders[/] "
            f"· {_money(summary.revenue)} · {summary.products_added:,} listed · {_errors(summary)}"
        )
        if self.clock is not None:
            line = f"[cyan]{self.clock():%a %H:%M}[/] · " + line
        completed = min(elapsed, self.duration) if self.duration else elapsed
        self.progress.update(self.task, completed=completed, line=line)


def summary_table(summary: Summary) -> Group:
    routes = Table(title="requests by route and status", title_justify="left")
    routes.add_column("route")
    routes.add_column("status", justify="right")
    routes.add_column("count", justify="right")
    routes.add_column("p50 ms", justify="right")
    routes.add_column("p99 ms", justify="right")
    for row in summary.route_rows():
        status = row["status"]
        style = "red" if status >= 500 or status == 0 else ("yellow" if status >= 400 else "")
        routes.add_row(
            row["route"],
            f"[{style}]{status or 'no answer'}[/]" if style else str(status),
            f"{row['count']:,}",
            "-" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}",
            "-" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}",
        )
    totals = Table(title="what the simulation did", title_justify="left", show_header=False)
    totals.add_column("measure")
    totals.add_column("value", justify="right")
    achieved = summary.achieved_rate
    share = achieved / summary.asked_rate if summary.asked_rate else 0
    totals.add_row("requests", f"{summary.total_requests:,} in {summary.elapsed_s:.1f}s")
    totals.add_row(
        "rate achieved / asked",
        f"{achieved:,.1f}/s of {summary.asked_rate:,.1f}/s ({share:.0%})",
    )
    totals.add_row("orders created", f"{summary.orders:,} ({summary.purchases_per_s:,.1f}/s)")
    totals.add_row("revenue", _money(summary.revenue))
    totals.add_row("products listed", f"{summary.products_added:,}")
    totals.add_row(
        "visits started / planned",
        f"{summary.visits_started:,} / {summary.visits_planned:,}"
        + (f" ({summary.visits_dropped:,} dropped)" if summary.visits_dropped else ""),
    )
    for what, n in sorted(summary.expected.items()):
        totals.add_row(f"expected: {what}", f"{n:,}")
    if summary.unexpected_4xx:
        totals.add_row("[yellow]unexpected 4xx[/]", f"{summary.unexpected_4xx:,}")
    if summary.transport_errors:
        totals.add_row("[red]no answer (timeouts, resets)[/]", f"{summary.transport_errors:,}")
    totals.add_row(
        "server errors (5xx)",
        f"[red]{summary.server_errors:,}[/]" if summary.server_errors else "0",
    )
    totals.add_row("seed", str(summary.seed))
    return Group(routes, totals)


def summary_notes(summary: Summary) -> list[str]:
    """One-line remarks under the table: slowness, stop reason."""
    notes = []
    if summary.aborted:
        notes.append(f"[red]stopped: {summary.aborted}[/]")
    if summary.stopped_by_user:
        notes.append("stopped by Ctrl-C; the counts above are what was sent until then")
    share = summary.achieved_rate / summary.asked_rate if summary.asked_rate else 1
    if summary.lagging or (share < 0.9 and not summary.stopped_by_user and not summary.aborted):
        notes.append(
            f"[yellow]{summary.lagging or 'the API was slower than the asked rate'}: achieved "
            f"{summary.achieved_rate:,.1f} of {summary.asked_rate:,.1f} requests/s[/]"
        )
    if summary.server_errors:
        notes.append(
            f"[red]the API answered {summary.server_errors} server errors (5xx): see its log[/]"
        )
    return notes


def backfill_table(result: BackfillResult) -> Table:
    table = Table(title="history written", title_justify="left", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    first = result.first.strftime("%Y-%m-%d") if result.first else "-"
    last = result.last.strftime("%Y-%m-%d") if result.last else "-"
    table.add_row("days", f"{result.days:,} ({first} .. {last})")
    table.add_row("products listed", f"{result.products:,}")
    table.add_row("orders", f"{result.orders:,}")
    table.add_row("revenue", _money(result.revenue))
    table.add_row("double clicks replayed", f"{result.replays:,}")
    table.add_row("stale purchases refused (already sold)", f"{result.already_sold:,}")
    table.add_row("rows written", f"{result.rows:,} in {result.seconds:.2f}s")
    table.add_row("rows/s", f"{result.rows_per_s:,.0f}")
    for name, n in sorted(result.orders_by_category.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  orders in {name}", f"{n:,}")
    return table
