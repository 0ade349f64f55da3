"""``hybridshop api`` as a user runs it: a real process, real HTTP, clean Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests


def test_api_command_serves_and_stops_on_ctrl_c(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HYBRIDSHOP_HOME": str(tmp_path),
        "COLUMNS": "200",
        "HYBRIDSHOP_API_PORT": "0",
        "HYBRIDSHOP_ISSUER_PORT": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridshop.cli.main", "api", "--auth", "local", "--quiet"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = metadata = None
        assert proc.stderr is not None
        deadline = time.time() + 60
        while (url is None or metadata is None) and time.time() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            found = re.search(r"│ API\s+│ (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else url
            found = re.search(
                r"│ Metadata \(METADATA_SERVER_URL\)\s+│ (http://127\.0\.0\.1:\d+)", line
            )
            metadata = found.group(1) if found else metadata
        assert url and metadata, "the command never printed its URLs"
        assert metadata != url  # the token issuer is not on the API's listener
        assert requests.get(url + "/products", timeout=30).status_code == 401
        token = requests.get(
            metadata + "/computeMetadata/v1/instance/service-accounts/default/identity",
            params={"audience": "hybridshop-api"},
            headers={"Metadata-Flavor": "Google"},
            timeout=30,
        ).text
        response = requests.get(
            url + "/products", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["items"], list)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "API stopped." in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
