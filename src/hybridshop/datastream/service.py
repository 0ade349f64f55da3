"""How other parts of hybridshop run the replicator: in a thread, or as a child process.

``start_replicator`` (benches, tests): the replicator runs in a daemon thread of the calling
process and owns the DuckDB file; readers in the same process use
``handle.reader()`` (a DuckDB cursor on the same database instance, MVCC-consistent and
fresh), readers in other processes open the snapshot copy (see docs/datastream.md).
``hybridshop up`` runs the same command ``spawn_replicator`` does, as a supervised child
process (``cli/supervisor.py``): a crash cannot take ``up`` with it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hybridshop.datastream.replicator import Replicator, ReplicatorConfig


def snapshot_path_for(duckdb_path: Path) -> Path:
    """Where the reader copy of a warehouse lives: ``warehouse.duckdb`` -> ``warehouse.read.duckdb``."""
    return duckdb_path.with_name(duckdb_path.stem + ".read" + duckdb_path.suffix)


@dataclass
class ReplicatorHandle:
    replicator: Replicator
    thread: threading.Thread
    stop_event: threading.Event
    errors: list[BaseException] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to finish its batch and close; waits up to ``timeout`` seconds."""
        self.stop_event.set()
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def status(self) -> dict[str, Any]:
        status = self.replicator.status()
        status["running"] = self.thread.is_alive()
        if self.errors:
            status["error"] = str(self.errors[-1])
        return status

    def reader(self) -> Any:
        """A DuckDB cursor on the live warehouse (same process only); close it when done."""
        import duckdb

        return duckdb.connect(str(self.replicator.config.duckdb_path)).cursor()


def start_replicator(
    dsn: str,
    duckdb_path: Path,
    *,
    stop_event: threading.Event | None = None,
    config: ReplicatorConfig | None = None,
) -> ReplicatorHandle:
    """Start replicating ``dsn`` into ``duckdb_path`` in a background thread.

    ``config`` overrides the defaults (slot, publication, mode, layout...); its ``dsn`` and
    ``duckdb_path`` are replaced by the arguments. The snapshot copy for other processes is
    on by default (``<name>.read.duckdb``, refreshed every second).
    """
    base = config or ReplicatorConfig(dsn=dsn, duckdb_path=duckdb_path)
    cfg = replace(base, dsn=dsn, duckdb_path=duckdb_path)
    if config is None:
        cfg.snapshot_path = snapshot_path_for(duckdb_path)
    rep = Replicator(cfg)
    stop = stop_event or threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            rep.run(stop)
        except BaseException as exc:  # noqa: BLE001 - reported through handle.status()
            errors.append(exc)

    thread = threading.Thread(target=target, name="hybridshop-datastream", daemon=True)
    handle = ReplicatorHandle(rep, thread, stop, errors)
    thread.start()
    return handle


def spawn_replicator(
    dsn: str, duckdb_path: Path, *extra_args: str, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Run the replicator as a child process (``python -m hybridshop.datastream``)."""
    args = [
        sys.executable,
        "-m",
        "hybridshop.datastream",
        "--dsn",
        dsn,
        "--duckdb",
        str(duckdb_path),
        *extra_args,
    ]
    out = log_file.open("ab") if log_file is not None else subprocess.DEVNULL
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
