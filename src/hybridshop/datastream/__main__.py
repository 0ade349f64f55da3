"""``python -m hybridshop.datastream``: the replicator as its own process (SIGTERM stops it
cleanly; SIGKILL is safe too, see the exactly-once notes in ``replicator``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from hybridshop.datastream.destination import APPEND_ONLY, DATASET_PER_SCHEMA, MERGE, SINGLE_DATASET
from hybridshop.datastream.replicator import Replicator, ReplicatorConfig
from hybridshop.datastream.source import PrerequisiteError
from hybridshop.db.replication import DEFAULT_PUBLICATION, DEFAULT_SLOT


def parse_args(argv: list[str] | None = None) -> ReplicatorConfig:
    p = argparse.ArgumentParser(prog="python -m hybridshop.datastream")
    p.add_argument("--dsn", required=True)
    p.add_argument("--duckdb", required=True, type=Path)
    p.add_argument("--slot", default=DEFAULT_SLOT)
    p.add_argument("--publication", default=DEFAULT_PUBLICATION)
    p.add_argument("--mode", choices=[MERGE, APPEND_ONLY], default=MERGE)
    p.add_argument("--layout", choices=[SINGLE_DATASET, DATASET_PER_SCHEMA], default=SINGLE_DATASET)
    p.add_argument("--dataset-prefix", default="")
    p.add_argument("--proto-version", type=int, choices=[1, 2], default=1)
    p.add_argument("--commit-interval", type=float, default=0.2)
    p.add_argument("--snapshot", type=Path, default=None)
    p.add_argument("--no-create-publication", action="store_true")
    p.add_argument("--resync", action="store_true")
    a = p.parse_args(argv)
    return ReplicatorConfig(
        dsn=a.dsn,
        duckdb_path=a.duckdb,
        slot=a.slot,
        publication=a.publication,
        mode=a.mode,
        layout=a.layout,
        dataset_prefix=a.dataset_prefix,
        proto_version=a.proto_version,
        commit_interval_s=a.commit_interval,
        snapshot_path=a.snapshot,
        create_publication=not a.no_create_publication,
        resync=a.resync,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        Replicator(config).run(stop)
    except PrerequisiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
