"""Whether a replicator is running, and its last error, readable by any process.

The warehouse file is locked by its writer, so liveness lives next to it in a small JSON file
(``warehouse.duckdb`` -> ``warehouse.replicator.json``) that the replicator rewrites atomically
about once a second while it runs, and once more when it stops or fails. ``hybridshop
replicate status``, ``hybridshop up``'s supervisor and ``replicate verify`` read it with
``read_liveness``.

Fields: ``pid``, ``slot``, ``phase`` (starting, backfill, streaming, reconnecting, stopped,
failed), ``started_at`` / ``heartbeat_at`` (Unix seconds), ``last_error`` / ``last_error_at``
(kept across restarts until a later run streams again), ``lsn`` applied, ``changes_applied``,
``rejected_changes`` (this run), ``stopped_tables`` ({"schema.table": reason}).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STALE_AFTER_S = 10.0  # no heartbeat for this long: the process is gone or hung
RUNNING_PHASES = frozenset(("starting", "backfill", "streaming", "reconnecting"))


def liveness_path_for(duckdb_path: Path) -> Path:
    return duckdb_path.with_name(duckdb_path.stem + ".replicator.json")


def write_liveness(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_liveness(duckdb_path: Path, *, now: float | None = None) -> dict[str, Any]:
    """The last liveness record of the replicator writing ``duckdb_path``, plus ``running``
    (a live phase, a fresh heartbeat and a live pid) and ``heartbeat_age_s``. Without a record:
    ``{"running": False, "phase": None}``."""
    path = liveness_path_for(duckdb_path)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"running": False, "phase": None, "last_error": None}
    now = time.time() if now is None else now
    age = now - float(data.get("heartbeat_at") or 0)
    pid = int(data.get("pid") or 0)
    data["heartbeat_age_s"] = round(age, 1)
    data["running"] = bool(
        data.get("phase") in RUNNING_PHASES and age <= STALE_AFTER_S and pid and _pid_alive(pid)
    )
    if data.get("phase") in RUNNING_PHASES and not data["running"]:
        data["phase"] = "dead"  # killed without a word (SIGKILL, OOM, power)
    return data


class LivenessReporter:
    """Rewrites the liveness file every ``interval_s`` from ``snapshot()`` on its own thread."""

    def __init__(
        self, duckdb_path: Path, snapshot: Callable[[], dict[str, Any]], interval_s: float = 1.0
    ) -> None:
        self.path = liveness_path_for(duckdb_path)
        self.snapshot = snapshot
        self.interval_s = interval_s
        self.started_at = time.time()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # beats come from this thread and the replicator's
        self._thread = threading.Thread(target=self._run, name="datastream-liveness", daemon=True)
        previous = read_liveness(duckdb_path)
        self.last_error: str | None = previous.get("last_error")
        self.last_error_at: float | None = previous.get("last_error_at")

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def error(self, message: str) -> None:
        self.last_error, self.last_error_at = message, time.time()

    def beat(self, phase: str | None = None) -> None:
        data = self.snapshot()
        if phase is not None:
            data["phase"] = phase
        data.update(
            pid=os.getpid(),
            started_at=self.started_at,
            heartbeat_at=time.time(),
            last_error=self.last_error,
            last_error_at=self.last_error_at,
        )
        with self._lock, contextlib.suppress(OSError):
            write_liveness(self.path, data)

    def stop(self, phase: str) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.beat(phase)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()
