"""``hybridshop dashboards``: the Looker project's dashboards, compiled and run locally.

``query`` prints a tile's rows, ``sql`` its BigQuery and DuckDB SQL, ``validate`` checks the
whole LookML project (a linter for CI). ``--bigquery PROJECT.DATASET`` runs the compiled
BigQuery SQL on BigQuery itself instead of the local warehouse.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from hybridshop.settings import DEFAULT_DASHBOARD_PORT, DEFAULT_HOST

app = typer.Typer(
    help="The Looker dashboards of looker/, compiled to SQL and run on the local warehouse. "
    "With no command: serve them (as `hybridshop dashboards serve`).",
    invoke_without_command=True,
)


@app.callback()
def _default(ctx: typer.Context) -> None:
    """With no sub-command, serve the dashboards on 127.0.0.1:8090 (`serve`'s defaults)."""
    if ctx.invoked_subcommand is None:
        port = os.environ.get("HYBRIDSHOP_DASHBOARD_PORT")
        _render.serve(
            host=DEFAULT_HOST,
            port=int(port) if port else DEFAULT_DASHBOARD_PORT,
            warehouse=None,
            project_dir=None,
            access_log=False,
        )


PROJECT_OPTION = typer.Option(
    None, "--project", help="The Looker project folder (default: the repository's looker/)."
)
WAREHOUSE_OPTION = typer.Option(
    None,
    "--warehouse",
    help=(
        "DuckDB file to query (default: .hybridshop/warehouse.read.duckdb while the replicator "
        "runs, else .hybridshop/warehouse.duckdb)."
    ),
)
FILTER_OPTION = typer.Option(
    [],
    "--filter",
    "-f",
    help="Dashboard filter as name=expression (a Looker filter expression), repeatable.",
)
BIGQUERY_OPTION = typer.Option(
    None,
    "--bigquery",
    help="Run on BigQuery: PROJECT.DATASET (credentials from the environment; needs the "
    "'bigquery' extra).",
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _load(project_dir: Path | None) -> Any:
    from hybridshop.analytics.lookml import load_project

    try:
        return load_project(project_dir)
    except FileNotFoundError as exc:
        _fail(str(exc))


def _parse_filters(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip():
            _fail(f"--filter {item!r}: expected name=expression, e.g. --filter 'date=7 days'")
        out[name.strip()] = expr
    return out


def default_warehouse() -> Path:
    """The DuckDB file another process may open: the read copy while the replicator runs."""
    from hybridshop.settings import state_dir

    state = state_dir()
    read_copy = state / "warehouse.read.duckdb"
    return read_copy if read_copy.exists() else state / "warehouse.duckdb"


def _compile(project: Any, dashboard: str, element: str, filters: dict[str, str]) -> Any:
    from hybridshop.analytics.lookml import compile_element

    if dashboard not in project.dashboards:
        names = ", ".join(sorted(project.dashboards)) or "none"
        _fail(f"no dashboard {dashboard!r} (dashboards: {names})")
    dash = project.dashboards[dashboard]
    if not any(e.name == element for e in dash.elements):
        names = ", ".join(e.name for e in dash.elements)
        _fail(f"dashboard {dashboard!r} has no element {element!r} (elements: {names})")
    unknown = [n for n in filters if dash.filter(n) is None]
    if unknown:
        names = ", ".join(f.name for f in dash.filters) or "none"
        _fail(f"dashboard {dashboard!r} has no filter {unknown[0]!r} (filters: {names})")
    compiled = compile_element(project, dashboard, element, filters)
    if compiled.errors:
        for err in compiled.errors:
            typer.secho(str(err), fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return compiled


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@app.command("query")
def query(
    dashboard: str = typer.Argument(..., help="Dashboard name (the `dashboard:` key)."),
    element: str = typer.Argument(..., help="Element name within the dashboard."),
    filters: list[str] = FILTER_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    project_dir: Path | None = PROJECT_OPTION,
    warehouse: Path | None = WAREHOUSE_OPTION,
    bigquery: str | None = BIGQUERY_OPTION,
) -> None:
    """Run one tile and print its rows (un-pivoted: one row per dimension and pivot value)."""
    from hybridshop.analytics.lookml import run_query

    project = _load(project_dir)
    compiled = _compile(project, dashboard, element, _parse_filters(filters))
    if bigquery:
        from hybridshop.analytics.bigquery import BigQueryRunner

        try:
            rows = BigQueryRunner.from_target(bigquery).run(compiled)
        except (ValueError, RuntimeError) as exc:
            _fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - google.api_core errors: one clear line
            _fail(f"BigQuery query failed on {bigquery}: {exc}")
    else:
        path = warehouse or default_warehouse()
        if not path.exists():
            _fail(f"no warehouse at {path}: run `hybridshop up` (or `hybridshop replicate`) first")
        try:
            rows = run_query(compiled, path).rows
        except Exception as exc:  # noqa: BLE001 - DuckDB errors: one clear line
            _fail(f"query failed on {path}: {exc}")
    if as_json:
        typer.echo(json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{dashboard} / {element}")
    for f in compiled.fields:
        table.add_column(f.label, justify="right" if f.is_measure else "left")
    for r in rows:
        table.add_row(
            *("∅" if r.get(f.name) is None else str(r.get(f.name)) for f in compiled.fields)
        )
    Console().print(table)


@app.command("sql")
def sql(
    dashboard: str = typer.Argument(..., help="Dashboard name."),
    element: str = typer.Argument(..., help="Element name within the dashboard."),
    filters: list[str] = FILTER_OPTION,
    project_dir: Path | None = PROJECT_OPTION,
    bigquery: str | None = typer.Option(
        None, "--bigquery", help="Show the BigQuery SQL retargeted to PROJECT.DATASET."
    ),
) -> None:
    """Print the BigQuery SQL Looker would send for a tile, and the DuckDB SQL run locally."""
    project = _load(project_dir)
    compiled = _compile(project, dashboard, element, _parse_filters(filters))
    typer.echo("-- BigQuery (what Looker sends)")
    if bigquery:
        from hybridshop.analytics.bigquery import BigQueryRunner

        try:
            typer.echo(BigQueryRunner.from_target(bigquery).sql(compiled))
        except ValueError as exc:
            _fail(str(exc))
    else:
        typer.echo(compiled.bigquery_sql)
    typer.echo("")
    typer.echo("-- DuckDB (what runs locally)")
    typer.echo(compiled.duckdb_sql)


@app.command("validate")
def validate(project_dir: Path | None = PROJECT_OPTION) -> None:
    """Check the whole LookML project: every include, field, explore and element compiles.

    Prints one file:line message per problem and exits non-zero if there is any.
    """
    from hybridshop.analytics.lookml import validate_project

    project = _load(project_dir)
    problems = validate_project(project)
    for p in problems:
        typer.echo(str(p))
    if problems:
        typer.secho(f"{len(problems)} problem(s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    n_el = sum(len(d.elements) for d in project.dashboards.values())
    typer.secho(
        f"ok: {len(project.models)} model(s), {len(project.views)} view(s), "
        f"{len(project.dashboards)} dashboard(s), {n_el} element(s)",
        fg=typer.colors.GREEN,
    )


# --- the local renderer: `serve` and `export` (implemented in cli/dashboards_render.py) ----
from hybridshop.cli import dashboards_render as _render  # noqa: E402

app.command("serve")(_render.serve)
app.command("export")(_render.export)
