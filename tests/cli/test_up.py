"""`hybridshop up` as a user runs it: serves the demo catalog, stops on Ctrl-C, keeps the data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from hybridshop.db.embedded import EmbeddedPostgres, free_port


def _get(url: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def _up(home: Path, api_port: int, pg_port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "HYBRIDSHOP_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybridshop.cli.main",
            "up",
            "--no-web",
            "--no-replicate",
            "--api-port",
            str(api_port),
            "--pg-port",
            str(pg_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _interrupt(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    return output


def test_up_serves_the_demo_catalog_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    home = tmp_path / "state"
    api_port, pg_port = free_port(), free_port()
    proc = _up(home, api_port, pg_port)
    try:
        page = _get(f"http://127.0.0.1:{api_port}/products?limit=100")
        assert isinstance(page, dict) and len(page["items"]) == 100 and page["next_cursor"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/products",
            data=json.dumps({"name": "Survives Restarts", "price": "1.00"}).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            created = json.loads(response.read())
    finally:
        output = _interrupt(proc)
    assert "stopped." in output
    server = EmbeddedPostgres(base_dir=home / "postgres", port=pg_port)
    assert not server.is_running()  # `up` stopped the PostgreSQL it started

    proc = _up(home, api_port, pg_port)
    try:
        again = _get(f"http://127.0.0.1:{api_port}/products/{created['id']}")
        assert isinstance(again, dict) and again["name"] == "Survives Restarts"
        categories = _get(f"http://127.0.0.1:{api_port}/categories")
        assert isinstance(categories, dict)
        total = sum(c["total"] for c in categories["items"])
        assert total == 301  # seeded once (300), not again on restart, plus ours
    finally:
        _interrupt(proc)
    assert not server.is_running()
