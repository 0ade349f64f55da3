"""`hybridshop web` serves the shop against a running API until interrupted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from hybridshop.gateway.server import LocalGateway
from web.conftest import AUDIENCE, Catalog, metadata_url


def test_hybridshop_web_command(gateway: LocalGateway, catalog: Catalog):
    catalog.add("Served by the CLI", "3.50")
    exe = Path(sys.executable).parent / "hybridshop"
    proc = subprocess.Popen(
        [
            str(exe),
            "web",
            "--port",
            "0",
            "--api-url",
            gateway.url,
            "--audience",
            AUDIENCE,
            "--metadata-url",
            metadata_url(gateway),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            m = re.search(r"Shop (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "the command did not print the shop URL"
        page = requests.get(url + "/", timeout=10)
        assert page.status_code == 200 and "Served by the CLI" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_hybridshop_web_rejects_a_bad_api_url():
    exe = Path(sys.executable).parent / "hybridshop"
    result = subprocess.run(
        [str(exe), "web", "--port", "0", "--api-url", "not-a-url"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "API_BASE_URL must be an http(s) URL" in result.stdout + result.stderr
