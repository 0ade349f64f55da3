"""``hybridshop up``: the whole system on one machine, with the same code as in the cloud.

Starts (or reuses) PostgreSQL, migrates, seeds an empty catalog, then serves the Lambda
functions behind the local API Gateway, the Flask shop, and the local Datastream
replicator. Ctrl-C stops everything it started; the data stays in the state directory, so
running ``up`` again picks up where it left off.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from hybridshop import settings
from hybridshop.cli.clock import seconds_since_launch

if TYPE_CHECKING:
    from hybridshop.gateway.server import LocalGateway

console = Console()


@dataclass
class Stack:
    """What ``up`` started, in start order, so it can stop them in reverse."""

    stops: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    urls: list[tuple[str, str, str]] = field(default_factory=list)  # component, url, stands in for

    def stop_all(self) -> None:
        for name, stop in reversed(self.stops):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                console.print(f"[yellow]while stopping {name}: {exc}[/]")
        self.stops.clear()


def up(
    host: str = typer.Option(settings.DEFAULT_HOST, "--host", help="Interface to listen on."),
    api_port: int = typer.Option(
        settings.DEFAULT_API_PORT,
        "--api-port",
        envvar="HYBRIDSHOP_API_PORT",
        help="Local API Gateway port.",
    ),
    web_port: int = typer.Option(
        settings.DEFAULT_WEB_PORT, "--web-port", envvar="HYBRIDSHOP_WEB_PORT", help="Web shop port."
    ),
    pg_port: int = typer.Option(
        settings.DEFAULT_PG_PORT,
        "--pg-port",
        envvar="HYBRIDSHOP_PG_PORT",
        help="Embedded PostgreSQL port.",
    ),
    concurrency: int = typer.Option(
        settings.DEFAULT_CONCURRENCY,
        "--concurrency",
        min=1,
        max=64,
        help="Warm environments per function.",
    ),
    auth: bool = typer.Option(
        False,
        "--auth/--no-auth",
        help="Enforce the JWT authorizer on the API, trusting the local ID-token issuer, as in production.",
    ),
    web: bool = typer.Option(True, "--web/--no-web", help="Start the Flask shop."),
    replicate: bool = typer.Option(
        True, "--replicate/--no-replicate", help="Start the local Datastream."
    ),
    dashboards: bool = typer.Option(
        True, "--dashboards/--no-dashboards", help="Serve the Looker dashboards (LookML, local)."
    ),
    dashboard_port: int = typer.Option(
        settings.DEFAULT_DASHBOARD_PORT,
        "--dashboard-port",
        envvar="HYBRIDSHOP_DASHBOARD_PORT",
        help="Dashboards port.",
    ),
    keep_db: bool = typer.Option(
        False,
        "--keep-db",
        help="Leave the embedded PostgreSQL running on exit (by default `up` stops what it started).",
    ),
) -> None:
    """Start the whole platform locally: PostgreSQL, API (Lambda + API Gateway), shop, Datastream."""
    from hybridshop.db.local import ensure_database

    stack = Stack()
    stop_event = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop_event.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        from hybridshop.db.local import embedded_server

        was_running = not os.environ.get("DATABASE_URL") and embedded_server(pg_port).is_running()
        with console.status(
            "starting PostgreSQL, applying migrations, seeding the demo catalog..."
        ):
            database = ensure_database(pg_port)
        if database.server is not None:
            stack.urls.append(("PostgreSQL (embedded)", database.dsn, "Amazon RDS for PostgreSQL"))
            if not keep_db and not was_running:
                stack.stops.append(("PostgreSQL", database.server.stop))
        else:
            stack.urls.append(
                ("PostgreSQL (DATABASE_URL)", _redact(database.dsn), "Amazon RDS for PostgreSQL")
            )

        gateway = _start_gateway(database.dsn, host, api_port, concurrency, auth)
        stack.stops.append(("API gateway", gateway.stop))
        stack.urls.append(
            ("API (GetProducts, GetItem, AddProduct)", gateway.url, "API Gateway + AWS Lambda")
        )
        stack.urls.append(("API description", f"{gateway.url}/openapi.json", "OpenAPI 3.1"))

        if web:
            from hybridshop.web.server import start_web

            shop = start_web(
                gateway.url,
                host,
                web_port,
                # the shop always fetches ID tokens as on Cloud Run; --auth decides if they are checked
                audience=settings.LOCAL_API_AUDIENCE,
                metadata_url=f"{gateway.issuer_url}/metadata",
            )
            stack.stops.append(("web shop", shop.stop))
            stack.urls.append(("Web shop", shop.url, "Flask on Google Cloud Run"))

        if replicate:
            _start_replicator(stack, database.dsn)

        if dashboards:
            _start_dashboards(stack, host, dashboard_port, replicate)

        _print_urls(stack)
        console.print(
            f"ready in {seconds_since_launch():.1f} s (from launch to every port answering)"
        )
        console.print("[dim]Ctrl-C stops everything; data stays in[/] " + str(settings.state_dir()))
        stop_event.wait()
        console.print("\nstopping...")
    finally:
        stack.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopped.")


def _start_gateway(dsn: str, host: str, port: int, concurrency: int, auth: bool) -> LocalGateway:
    from hybridshop.gateway.authorizer import JwtAuthorizerConfig
    from hybridshop.gateway.server import GatewayConfig, LocalGateway

    env = {"DATABASE_URL": dsn, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO")}
    if auth:
        env["ALLOWED_CALLERS"] = settings.LOCAL_SERVICE_ACCOUNT
    gateway = LocalGateway(
        GatewayConfig(
            host=host,
            port=port,
            env=env,
            concurrency=concurrency,
            authorizer=JwtAuthorizerConfig.local() if auth else None,
            local_issuer=True,
            quiet=True,
        )
    )
    gateway.start()
    return gateway


def _start_replicator(stack: Stack, dsn: str) -> None:
    from hybridshop.datastream.service import snapshot_path_for, start_replicator

    warehouse = settings.state_dir() / "warehouse.duckdb"
    handle = start_replicator(dsn, warehouse)
    stack.stops.append(("replicator", handle.stop))
    # Other processes cannot open a DuckDB file that one process writes: they read the copy.
    stack.urls.append(
        (
            "Warehouse (DuckDB, read this copy)",
            str(snapshot_path_for(warehouse)),
            "Datastream -> BigQuery",
        )
    )


def _start_dashboards(stack: Stack, host: str, port: int, replicating: bool) -> None:
    from hybridshop.analytics.render import start_dashboards
    from hybridshop.datastream.service import snapshot_path_for

    warehouse = settings.state_dir() / "warehouse.duckdb"
    # the replicator owns warehouse.duckdb: the dashboards read its read copy (about 1 s old)
    try:
        server = start_dashboards(
            snapshot_path_for(warehouse) if replicating else warehouse, host, port
        )
    except OSError as exc:  # the rest of the stack is still useful: say so and go on
        console.print(
            f"[yellow]dashboards not started: cannot listen on {host}:{port} ({exc.strerror}); "
            "pass --dashboard-port, or serve them later with `hybridshop dashboards serve`[/]"
        )
        return
    stack.stops.append(("dashboards", server.stop))
    stack.urls.append(
        ("Dashboards (the LookML, rendered locally)", server.url, "Looker on BigQuery")
    )


def _redact(dsn: str) -> str:
    """Hide a password in a DSN before printing it."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, _, tail = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{tail}" if ":" in creds else dsn
    return dsn


def _print_urls(stack: Stack) -> None:
    table = Table(title="hybridshop is running", title_justify="left")
    table.add_column("component")
    table.add_column("where", overflow="fold")
    table.add_column("stands in for", style="dim")
    for name, url, cloud in stack.urls:
        table.add_row(name, url, cloud)
    console.print(table)
