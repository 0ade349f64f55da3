"""``hybridshop dashboards serve`` and ``hybridshop dashboards export``: the local renderer.

Registered on the ``dashboards`` sub-app (cli/dashboards.py); the renderer itself lives in
``hybridshop.analytics.render``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hybridshop.settings import DEFAULT_DASHBOARD_PORT, DEFAULT_HOST


def _warehouse(path: Path | None) -> Path:
    from hybridshop.cli.dashboards import default_warehouse

    return path or default_warehouse()


def _filters(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(
                f"{item!r}: expected name=expression, e.g. --filter 'date=30 days'"
            )
        out[name.strip()] = expr
    return out


def serve(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Interface to listen on."),
    port: int = typer.Option(
        DEFAULT_DASHBOARD_PORT,
        "--port",
        "-p",
        envvar="HYBRIDSHOP_DASHBOARD_PORT",
        help="Port (0 = any free).",
    ),
    warehouse: Path | None = typer.Option(
        None,
        "--warehouse",
        help="DuckDB file (default: .hybridshop/warehouse.read.duckdb, the replicator's read "
        "copy, else .hybridshop/warehouse.duckdb).",
    ),
    project_dir: Path | None = typer.Option(
        None, "--project", help="The Looker project folder (default: the repository's looker/)."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Print one line per request."),
) -> None:
    """Serve the Looker dashboards on http://127.0.0.1:8090, live on the local warehouse.

    Pages refresh by themselves when the replicator applies changes; filters are in the URL.
    """
    from rich.console import Console

    from hybridshop.analytics.render import make_dashboard_server

    path = _warehouse(warehouse)
    try:
        server = make_dashboard_server(
            path, host, port, project_dir=project_dir, access_log=access_log
        )
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    console = Console()
    console.print(f"Dashboards on [bold]{server.url}[/] (warehouse: {path})")
    if not path.exists():
        console.print(
            "[yellow]no warehouse there yet: tiles say so until `hybridshop up` (or "
            "`hybridshop replicate`) creates it[/]"
        )
    console.print("[dim]Ctrl-C stops[/]")
    server.serve_forever()


def export(
    out_dir: Path = typer.Option(
        Path("dashboards-export"), "--out", "-o", help="Folder to write the files to."
    ),
    dashboards: list[str] = typer.Option(
        [], "--dashboard", "-d", help="Only this dashboard (repeatable; default: all)."
    ),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="Dashboard filter as name=expression, repeatable."
    ),
    html: bool = typer.Option(True, "--html/--no-html", help="Write the self-contained HTML."),
    png: bool = typer.Option(True, "--png/--no-png", help="Write the PNG."),
    pdf: bool = typer.Option(False, "--pdf", help="Also write the picture as a one-page PDF."),
    scale: float = typer.Option(2.0, "--scale", min=0.5, max=4.0, help="PNG pixel density."),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Evaluate relative date filters ('180 days', 'this month') as of this UTC date or "
        "time (YYYY-MM-DD[THH:MM]), for a reproducible report.",
    ),
    warehouse: Path | None = typer.Option(None, "--warehouse", help="DuckDB file to read."),
    project_dir: Path | None = typer.Option(None, "--project", help="The Looker project folder."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write each dashboard as a self-contained HTML file (opens offline) and a PNG.

    The PNG is drawn without a browser: vl-convert renders the charts, and the newspaper
    layout is composed around them, nothing cut off.
    """
    from rich.console import Console

    from hybridshop.analytics.render.export import export_dashboards, export_summary
    from hybridshop.analytics.render.service import DashboardService, UnknownDashboard
    from hybridshop.analytics.render.warehouse import WarehouseFile

    console = Console(stderr=True)
    path = _warehouse(warehouse)
    if not path.exists():
        typer.secho(
            f"error: no warehouse at {path}: run `hybridshop up` (or `hybridshop replicate`) first",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    now = None
    if as_of:
        from datetime import UTC, datetime

        try:
            now = datetime.fromisoformat(as_of).replace(tzinfo=UTC)
        except ValueError:
            raise typer.BadParameter(
                f"--as-of {as_of!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM"
            ) from None
    service = DashboardService(WarehouseFile(path), project_dir, now=now)
    try:
        with console.status("exporting...") as status:
            results = export_dashboards(
                service,
                out_dir,
                dashboards or None,
                filters=_filters(filters),
                html=html,
                png=png,
                pdf=pdf,
                scale=scale,
                progress=lambda name: status.update(f"exporting {name}..."),
            )
    except UnknownDashboard as exc:
        names = ", ".join(d.name for d in service.dashboards()) or "none"
        typer.secho(
            f"error: no dashboard {exc} (dashboards: {names})", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(1) from None
    finally:
        service.warehouse.close()
    summary = export_summary(results)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for r in summary:
        files = ", ".join(str(p) for p in (r["html"], r["png"], r["pdf"]) if p)
        note = f", [red]{r['tile_errors']} tile(s) with errors[/]" if r["tile_errors"] else ""
        console.print(f"{r['dashboard']}: {files} ({r['export_ms']:.0f} ms{note})")
