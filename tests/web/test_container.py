"""The Cloud Run image: its exact start command, read from the Dockerfile, serves the shop.

There is no Docker engine here, so we run the CMD line itself with the image's ENV, in a
subprocess, against the real gateway, and check what Cloud Run would check.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from hybridshop.db.embedded import free_port
from hybridshop.gateway.server import LocalGateway

from .conftest import AUDIENCE, Catalog, metadata_url

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "app" / "flask-app" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in _instructions():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _cmd() -> list[str]:
    cmds = [rest for word, rest in _instructions() if word == "CMD"]
    assert len(cmds) == 1, "the Dockerfile must have exactly one CMD"
    cmd = json.loads(cmds[0])
    assert isinstance(cmd, list) and all(isinstance(x, str) for x in cmd)
    return cmd


def test_dockerfile_is_slim_non_root_and_without_dev_extras():
    instructions = _instructions()
    base = next(rest for word, rest in instructions if word == "FROM")
    assert re.match(r"python:3\.\d+-slim", base)
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    installs = [rest for word, rest in instructions if word == "RUN" and "pip install" in rest]
    assert installs and not any("[dev]" in r or ".[" in r for r in installs)
    assert "$PORT" in " ".join(_cmd()) or "${PORT}" in " ".join(_cmd())
    assert "hybridshop.web.wsgi:app" in " ".join(_cmd())


def test_container_start_command_serves_the_shop(gateway: LocalGateway, catalog: Catalog):
    catalog.add("Container-served lamp", "15.00")
    port = free_port()
    env = {
        **os.environ,
        **_image_env(),
        "PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SECRET_KEY": secrets.token_hex(32),
        "API_BASE_URL": gateway.url,
        "API_AUDIENCE": AUDIENCE,
        "METADATA_SERVER_URL": metadata_url(gateway),
    }
    assert env["SHOP_ENV"] == "production"
    proc = subprocess.Popen(
        _cmd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                health = requests.get(f"{base}/health", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "gunicorn did not start listening"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        page = requests.get(base + "/", timeout=10)
        assert page.status_code == 200 and "Container-served lamp" in page.text
        assert requests.get(f"{base}/ready", timeout=10).status_code == 200
        # production hygiene: HSTS, and a __Host- session cookie that is Secure
        product = re.search(r'href="(/products/\d+)"', page.text)
        assert product
        resp = requests.get(base + product.group(1), timeout=10)
        assert "Strict-Transport-Security" in resp.headers
        cookie = resp.headers["Set-Cookie"]
        assert cookie.startswith("__Host-shop=") and "Secure" in cookie
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def test_container_refuses_to_start_without_secret_key(gateway: LocalGateway):
    env = {
        **os.environ,
        **_image_env(),
        "PORT": str(free_port()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "API_BASE_URL": gateway.url,
        "API_AUDIENCE": AUDIENCE,
    }
    env.pop("SECRET_KEY", None)
    result = subprocess.run(_cmd(), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY is required in production" in result.stdout + result.stderr
