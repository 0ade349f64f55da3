"""``hybridshop up``: the whole system on one machine, with the same code as in the cloud.

Starts (or reuses) PostgreSQL, migrates, seeds an empty catalog, then serves the Lambda
functions behind the local API Gateway, the Flask shop, and the local Datastream
replicator. Ctrl-C stops everything it started; the data stays in the state directory, so
running ``up`` again picks up where it left off.

Everything it starts is supervised (``supervisor``): a component that dies is reported at
once with the last lines of its output and restarted with backoff; after 5 failures in 60 s
it is given up on. Giving up on PostgreSQL or the API stops ``up`` with exit code 1 (nothing
works without them); giving up on the shop, the replicator or the dashboards keeps the rest
serving and the status says FAILED. The replicator runs as a child process (``python -m hybridshop.datastream``,
log in ``<state>/logs/replicator.log``): a crash, even ``kill -9``, costs nothing, since it
resumes exactly once from its slot. PostgreSQL from ``DATABASE_URL`` is not ours to restart.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from hybridshop import settings
from hybridshop.cli.api import MAX_QUEUE_OPTION, MAX_WAIT_OPTION
from hybridshop.cli.clock import seconds_since_launch
from hybridshop.cli.supervisor import (
    DaemonComponent,
    Event,
    ProcessComponent,
    RestartPolicy,
    Supervisor,
    ThreadComponent,
)
from hybridshop.db.replication import DEFAULT_SLOT, DEFAULT_WAL_ALARM_MB

if TYPE_CHECKING:
    from hybridshop.db.embedded import EmbeddedPostgres
    from hybridshop.gateway.server import LocalGateway

console = Console()


@dataclass
class Stack:
    """What ``up`` started: the supervisor holds the components (in start order, stopped in
    reverse), ``urls`` what the table shows."""

    urls: list[tuple[str, str, str]] = field(default_factory=list)  # component, url, stands in for
    retry_failed_s: float = 60.0
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        policy = RestartPolicy(retry_failed_s=self.retry_failed_s)
        self.supervisor = Supervisor(report=self._report, policy=policy)

    def _report(self, event: Event) -> None:
        """Print a supervision event the moment it happens, then the state of everything."""
        style = _STYLE.get(event.kind, "")
        console.print(
            f"[{style}]{event.component}: {event.kind}[/] {event.message}", highlight=False
        )
        for line in event.output.splitlines():
            console.print("    " + line, style="dim", markup=False, highlight=False)
        if event.kind in ("restarting", "restarted", "recovered", "gave-up", "still-failed"):
            states = ", ".join(f"{name} {state}" for name, state, _ in self.supervisor.status())
            console.print(f"[bold]status:[/] {states}", highlight=False)

    def stop_all(self) -> None:
        self.supervisor.stop_all()


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
    max_queue: int = MAX_QUEUE_OPTION,
    max_wait: float = MAX_WAIT_OPTION,
    auth: bool = typer.Option(
        False,
        "--auth/--no-auth",
        help="Enforce the JWT authorizer on the API, trusting the local ID-token issuer, as in production.",
    ),
    issuer_port: int = typer.Option(
        0,
        "--issuer-port",
        envvar="HYBRIDSHOP_ISSUER_PORT",
        help="Port of the local ID-token issuer / metadata server stand-in, always on "
        "127.0.0.1 (0: any free).",
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
    wal_alarm_mb: float = typer.Option(
        DEFAULT_WAL_ALARM_MB,
        "--wal-alarm-mb",
        min=0,
        help="Alarm when the replication slot retains more WAL than this many MB (as the "
        "deployed CloudWatch alarm does).",
    ),
    retry_failed_s: float = typer.Option(
        60.0,
        "--retry-failed-after",
        min=0,
        help="Seconds after which a component given up on (the replicator, the shop) is "
        "tried again, so it resumes once its cause is fixed (0: never).",
    ),
    keep_db: bool = typer.Option(
        False,
        "--keep-db",
        help="Leave the embedded PostgreSQL running on exit (by default `up` stops what it started).",
    ),
) -> None:
    """Start the whole platform locally: PostgreSQL, API (Lambda + API Gateway), shop, Datastream.

    SHOP_ADMIN_TOKEN (environment) protects the shop's "Sell an item" with a seller sign-in;
    with --auth only the shop's identity may add products through the API (ALLOWED_SELLERS).
    """
    from hybridshop.db.local import ensure_database

    lock = _hold_state_lock()
    listeners = [(host, api_port, "--api-port", "HYBRIDSHOP_API_PORT")]
    if web:
        listeners.append((host, web_port, "--web-port", "HYBRIDSHOP_WEB_PORT"))
    if dashboards:
        listeners.append((host, dashboard_port, "--dashboard-port", "HYBRIDSHOP_DASHBOARD_PORT"))
    if issuer_port:  # always on loopback
        listeners.append(("127.0.0.1", issuer_port, "--issuer-port", "HYBRIDSHOP_ISSUER_PORT"))
    _require_free_ports(listeners)
    stack = Stack(retry_failed_s=retry_failed_s)
    stop_event = threading.Event()
    ok = True

    def _on_signal(signum: int, frame: object) -> None:
        stop_event.set()

    def checkpoint() -> None:
        """Between start-up steps: a Ctrl-C during start-up stops now, not once all is up."""
        if stop_event.is_set():
            raise _Interrupted

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
            owned = not keep_db and not was_running
            stack.supervisor.start(_postgres(database.server, owned), already_running=True)
        else:
            stack.urls.append(
                ("PostgreSQL (DATABASE_URL)", _redact(database.dsn), "Amazon RDS for PostgreSQL")
            )

        gateway_component = ThreadComponent(
            "API gateway",
            lambda: _start_gateway(
                database.dsn, host, api_port, concurrency, auth, issuer_port, max_queue, max_wait
            ),
            lambda g: bool(g.is_alive()),
            threads=("gateway",),
            essential=True,
            describe=lambda g: str(g.url),
        )
        checkpoint()
        stack.supervisor.start(gateway_component)
        gateway: LocalGateway = gateway_component.server
        stack.urls.append(
            ("API (GetProducts, GetItem, AddProduct)", gateway.url, "API Gateway + AWS Lambda")
        )
        stack.urls.append(("API description", f"{gateway.url}/openapi.json", "OpenAPI 3.1"))
        stack.urls.append(
            ("ID tokens (METADATA_SERVER_URL)", gateway.metadata_url, "Google's metadata server")
        )

        checkpoint()
        if web:
            from hybridshop.web.server import start_web

            api_url, metadata_url = gateway.url, gateway.metadata_url
            shop_component = ThreadComponent(
                "web shop",
                lambda: start_web(
                    api_url,
                    host,
                    web_port,
                    # the shop always fetches ID tokens as on Cloud Run; --auth decides if
                    # they are checked
                    audience=settings.LOCAL_API_AUDIENCE,
                    metadata_url=metadata_url,
                    # as on Cloud Run: the session key and the seller token come from the
                    # environment
                    secret_key=os.environ.get("SECRET_KEY") or None,
                    admin_token=os.environ.get("SHOP_ADMIN_TOKEN") or None,
                ),
                lambda w: bool(w.is_alive()),
                threads=("hybridshop-web",),
                describe=lambda w: str(w.url),
            )
            stack.supervisor.start(shop_component)
            stack.urls.append(("Web shop", shop_component.server.url, "Flask on Google Cloud Run"))

        checkpoint()
        if replicate:
            _start_replicator(stack, database.dsn, wal_alarm_mb)

        checkpoint()
        if dashboards:
            _start_dashboards(stack, host, dashboard_port, replicate)

        checkpoint()
        _print_urls(stack)
        console.print(
            f"ready in {seconds_since_launch():.1f} s (from launch to every port answering)"
        )
        console.print("[dim]Ctrl-C stops everything; data stays in[/] " + str(settings.state_dir()))
        ok = stack.supervisor.run(stop_event)
        console.print("\nstopping..." if ok else "stopping everything...")
    except _Interrupted:
        console.print("\ninterrupted during start-up: stopping what was started...")
    finally:
        stack.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopped.")
    lock.close()
    if not ok:
        raise typer.Exit(1)


def _require_free_ports(listeners: list[tuple[str, int, str, str]]) -> None:
    """Before starting anything: each port ``up`` will listen on is free, or a one-line error
    naming the option that moves it (a server failing to bind later said only "Address
    already in use", or printed a traceback)."""
    import errno
    import socket

    seen: dict[int, str] = {}
    for host, port, option, variable in listeners:
        if port in seen:
            _fail_start(f"{option} and {seen[port]} are both {port}: give each its own port")
        seen[port] = option
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                _fail_start(
                    f"port {port} on {host} is taken by another program: stop it, or pass "
                    f"{option} (or set {variable})"
                )


def _fail_start(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _hold_state_lock() -> IO[str]:
    """One ``up`` per state folder: a second would share its PostgreSQL and fight over the
    warehouse and the slot. The lock is the kernel's (flock), so it goes with the process,
    even after kill -9; the file names the holder."""
    import fcntl

    state = settings.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    path = state / "up.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        _fail_start(
            f"another `hybridshop up` (pid {holder}) is running with the state folder "
            f"{state}. Stop it (Ctrl-C in its terminal), or give this one its own folder and "
            "ports: HYBRIDSHOP_HOME=<folder> hybridshop up --api-port … --web-port … "
            "--pg-port … --dashboard-port …"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM) arrived while ``up`` was still starting its components."""


def _start_gateway(
    dsn: str,
    host: str,
    port: int,
    concurrency: int,
    auth: bool,
    issuer_port: int,
    max_queue: int = settings.DEFAULT_MAX_QUEUE,
    max_wait_s: float = settings.DEFAULT_MAX_WAIT_S,
) -> LocalGateway:
    from hybridshop.gateway.authorizer import JwtAuthorizerConfig
    from hybridshop.gateway.server import GatewayConfig, LocalGateway

    env = {"DATABASE_URL": dsn, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO")}
    if auth:
        env["ALLOWED_CALLERS"] = settings.LOCAL_SERVICE_ACCOUNT
        env["ALLOWED_SELLERS"] = settings.LOCAL_SERVICE_ACCOUNT
    gateway = LocalGateway(
        GatewayConfig(
            host=host,
            port=port,
            env=env,
            concurrency=concurrency,
            max_queue=max_queue,
            max_wait_s=max_wait_s,
            authorizer=JwtAuthorizerConfig.local() if auth else None,
            local_issuer=True,
            issuer_port=issuer_port,
            quiet=True,
        )
    )
    gateway.start()
    return gateway


def _start_replicator(stack: Stack, dsn: str, wal_alarm_mb: float) -> None:
    from hybridshop.datastream.service import snapshot_path_for

    warehouse = settings.state_dir() / "warehouse.duckdb"
    reader_copy = snapshot_path_for(warehouse)
    # A child process: a crash (even kill -9) cannot take `up` with it, and the restart
    # resumes exactly once from the slot (see datastream/replicator.py).
    args = [sys.executable, "-m", "hybridshop.datastream", "--dsn", dsn]
    args += ["--duckdb", str(warehouse), "--snapshot", str(reader_copy)]
    log_file = settings.state_dir() / "logs" / "replicator.log"
    stack.supervisor.start(ProcessComponent("replicator", args, log_file))
    stack.supervisor.watch("replicator", WAL_WATCH_EVERY_S, _WalWatch(dsn, wal_alarm_mb))
    # Other processes cannot open a DuckDB file that one process writes: they read the copy.
    stack.urls.append(
        ("Warehouse (DuckDB, read this copy)", str(reader_copy), "Datastream -> BigQuery")
    )


WAL_WATCH_EVERY_S = 10.0


class _WalWatch:
    """WAL piling up for the slot (the replicator stopped or behind): the alarm, then again
    every ``repeat_s`` while it lasts, and a word once it is back under."""

    def __init__(self, dsn: str, alarm_mb: float, repeat_s: float = 300.0) -> None:
        self.dsn, self.alarm_mb, self.repeat_s = dsn, alarm_mb, repeat_s
        self._said_at: float | None = None

    def __call__(self) -> str | None:
        import time

        from hybridshop.datastream.status import source_status, wal_alarm

        alarm = wal_alarm(source_status(self.dsn, DEFAULT_SLOT), self.alarm_mb)
        now = time.monotonic()
        if alarm is None:
            cleared, self._said_at = self._said_at is not None, None
            return f"WAL retained back under {self.alarm_mb:g} MB" if cleared else None
        if self._said_at is not None and now - self._said_at < self.repeat_s:
            return None
        self._said_at = now
        return alarm


def _postgres(server: EmbeddedPostgres, owned: bool) -> DaemonComponent:
    """The embedded server, supervised through its postmaster.pid (pg_ctl detaches it)."""

    def pid() -> int | None:
        try:
            first = (server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    return DaemonComponent(
        "PostgreSQL",
        server.start,
        pid,
        server.log_file,
        stop=server.stop if owned else None,
        essential=True,
    )


_STYLE = {
    "started": "dim",
    "died": "bold red",
    "start-failed": "red",
    "gave-up": "bold red",
    "still-failed": "red",
    "restarting": "yellow",
    "restarted": "green",
    "recovered": "green",
    "stop-failed": "yellow",
    "retrying": "yellow",
    "alarm": "bold yellow",
}


def _start_dashboards(stack: Stack, host: str, port: int, replicating: bool) -> None:
    from hybridshop.analytics.render import start_dashboards
    from hybridshop.datastream.service import snapshot_path_for

    warehouse = settings.state_dir() / "warehouse.duckdb"
    # the replicator owns warehouse.duckdb: the dashboards read its read copy (about 1 s old)
    source = snapshot_path_for(warehouse) if replicating else warehouse
    component = ThreadComponent(
        "dashboards",
        lambda: start_dashboards(source, host, port),
        lambda d: bool(d.is_alive()),
        threads=("hybridshop-dashboards",),
        describe=lambda d: str(d.url),
    )
    try:
        stack.supervisor.start(component)
    except OSError as exc:  # the rest of the stack is still useful: say so and go on
        console.print(
            f"[yellow]dashboards not started: cannot listen on {host}:{port} ({exc.strerror}); "
            "pass --dashboard-port, or serve them later with `hybridshop dashboards serve`[/]"
        )
        return
    stack.urls.append(
        ("Dashboards (the LookML, rendered locally)", component.server.url, "Looker on BigQuery")
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
