"""Requests to a running replicator from another process (``hybridshop replicate backfill``).

The replicator owns the warehouse file, so a request is a small JSON file next to it
(``warehouse.duckdb`` -> ``warehouse.requests.json``) that the replicator takes (reads and
removes) between batches; it reports what it did in its liveness file (``backfilled``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def requests_path_for(duckdb_path: Path) -> Path:
    return duckdb_path.with_name(duckdb_path.stem + ".requests.json")


def request_backfill(duckdb_path: Path, tables: set[str]) -> None:
    path = requests_path_for(duckdb_path)
    current: set[str] = set()
    with contextlib.suppress(OSError, ValueError):
        current = set(json.loads(path.read_text()).get("backfill", []))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"backfill": sorted(current | tables)}))
    os.replace(tmp, path)


def take_requests(path: Path) -> set[str]:
    """The tables asked for, removing the request (an unreadable file is dropped)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    path.unlink(missing_ok=True)
    try:
        return {str(t) for t in json.loads(text).get("backfill", [])}
    except (ValueError, AttributeError):
        return set()
