"""``hybridshop package``: reproducible Lambda zips with only what the handlers import, and the
Cloud Run build context. The psycopg2-binary wheel comes from PyPI once, then from the cache
under the state dir."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hybridshop.lambda_functions import FUNCTIONS
from hybridshop.packaging import (
    BOOTSTRAP,
    PackagingError,
    build_cloudrun_context,
    build_lambda_zips,
    module_closure,
)
from hybridshop.settings import state_dir

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = shutil.which("terraform")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, object]]]:
    out = tmp_path_factory.mktemp("lambda")
    return out, build_lambda_zips(out, state=state_dir())


def test_builds_every_function_and_the_bootstrap(built) -> None:  # type: ignore[no-untyped-def]
    out, manifest = built
    expected = {f.name for f in FUNCTIONS} | {BOOTSTRAP.name}
    assert set(manifest) == expected
    assert {p.stem for p in out.glob("*.zip")} == expected


def test_same_inputs_same_bytes(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, manifest = built
    again = build_lambda_zips(tmp_path, state=state_dir())
    for name in manifest:
        assert (out / f"{name}.zip").read_bytes() == (tmp_path / f"{name}.zip").read_bytes(), name
    assert (out / "manifest.json").read_bytes() == (tmp_path / "manifest.json").read_bytes()
    assert again == manifest


def test_zip_holds_only_what_the_handler_needs(built) -> None:  # type: ignore[no-untyped-def]
    out, _ = built
    names = zipfile.ZipFile(out / "GetItem.zip").namelist()
    assert "hybridshop/lambda_functions/get_item.py" in names
    assert "hybridshop/db/connection.py" in names
    assert "hybridshop/db/migrations/0001_catalog.sql" in names
    assert any(n.startswith("psycopg2/_psycopg.cpython-312-x86_64-linux-gnu") for n in names)
    for absent in (
        "hybridshop/cli/",
        "hybridshop/gateway/",
        "hybridshop/web/",
        "boto3/",
        "hybridshop/db/embedded.py",
    ):
        assert not any(n.startswith(absent) for n in names), absent
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    boot = zipfile.ZipFile(out / "Bootstrap.zip").namelist()
    assert "hybridshop/db/migrate.py" in boot and "hybridshop/db/replication.py" in boot


def test_entries_are_sorted_with_fixed_time_and_mode(built) -> None:  # type: ignore[no-untyped-def]
    out, _ = built
    infos = zipfile.ZipFile(out / "AddProduct.zip").infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}


def test_handlers_import_from_the_zip_alone(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every hybridshop module a handler imports is in its zip (psycopg2 from this venv,
    since the zip's wheel is built for the Lambda's Python, not necessarily this one)."""
    out, _ = built
    for spec in [*FUNCTIONS, BOOTSTRAP]:
        name = spec.name
        target = tmp_path / name
        with zipfile.ZipFile(out / f"{name}.zip") as zf:
            zf.extractall(target, [n for n in zf.namelist() if n.startswith("hybridshop/")])
        code = (
            "import sys, importlib; sys.path.insert(0, sys.argv[1]); import hybridshop; "
            "assert hybridshop.__file__.startswith(sys.argv[1]), hybridshop.__file__; "
            "m = importlib.import_module(sys.argv[2]); assert callable(m.handler)"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, str(target), spec.module],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")
def test_manifest_hash_is_terraforms_filebase64sha256(built) -> None:  # type: ignore[no-untyped-def]
    out, manifest = built
    path = out / "GetProducts.zip"
    proc = subprocess.run(
        [TERRAFORM or "terraform", "console"],
        input=f'filebase64sha256("{path}")\n',
        capture_output=True,
        text=True,
        cwd=out,
        check=True,
    )
    assert proc.stdout.strip().strip('"') == manifest["GetProducts"]["base64sha256"]


def test_unbundled_third_party_import_is_reported(tmp_path: Path) -> None:
    pkg = tmp_path / "hybridshop"
    (pkg / "lambda_functions").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "lambda_functions" / "__init__.py").write_text("")
    (pkg / "lambda_functions" / "fn.py").write_text(
        "import json\nimport requests\nfrom . import helper\n\ndef handler(e, c):\n    return {}\n"
    )
    (pkg / "lambda_functions" / "helper.py").write_text("import psycopg2\n")
    modules, third = module_closure("hybridshop.lambda_functions.fn", tmp_path / "hybridshop")
    assert modules == {
        "hybridshop",
        "hybridshop.lambda_functions",
        "hybridshop.lambda_functions.fn",
        "hybridshop.lambda_functions.helper",
    }
    assert third == {"requests", "psycopg2"}
    with pytest.raises(PackagingError, match="not found"):
        module_closure("hybridshop.lambda_functions.nope", tmp_path / "hybridshop")


def test_bad_runtime_or_arch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="runtime"):
        build_lambda_zips(tmp_path, state=tmp_path, runtime="python3.9")
    with pytest.raises(PackagingError, match="arch"):
        build_lambda_zips(tmp_path, state=tmp_path, arch="sparc")


def _fake_repo(root: Path) -> Path:
    for rel, text in {
        "pyproject.toml": "[project]\nname='x'\n",
        "README.md": "# x\n",
        "app/flask-app/Dockerfile": "FROM python:3.12-slim\n",
        "src/hybridshop/__init__.py": "",
        "src/hybridshop/web/app.py": "x = 1\n",
        "src/hybridshop/web/__pycache__/app.cpython-311.pyc": "junk",
        "tests/test_x.py": "not in the context",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_cloudrun_context(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    tag = build_cloudrun_context(repo, tmp_path / "ctx")
    files = sorted(
        p.relative_to(tmp_path / "ctx").as_posix()
        for p in (tmp_path / "ctx").rglob("*")
        if p.is_file()
    )
    assert files == [
        "Dockerfile",
        "IMAGE_TAG",
        "README.md",
        "app/flask-app/Dockerfile",
        "cloudbuild.yaml",
        "pyproject.toml",
        "src/hybridshop/__init__.py",
        "src/hybridshop/web/app.py",
    ]
    assert build_cloudrun_context(repo, tmp_path / "ctx2") == tag  # content-addressed tag
    (repo / "src/hybridshop/web/app.py").write_text("x = 2\n")
    assert build_cloudrun_context(repo, tmp_path / "ctx") != tag
    (repo / "README.md").unlink()
    with pytest.raises(PackagingError, match=r"README\.md"):
        build_cloudrun_context(repo, tmp_path / "ctx")


def test_cli_package(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    exe = Path(sys.executable).with_name("hybridshop")
    ok = subprocess.run(
        [str(exe), "package", "--no-lambdas", "--repo-root", str(repo), "--out", str(tmp_path / "b")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    tag = (tmp_path / "b" / "cloudrun" / "IMAGE_TAG").read_text().strip()
    assert f"image tag {tag}" in ok.stdout
    (repo / "pyproject.toml").unlink()
    bad = subprocess.run(
        [str(exe), "package", "--no-lambdas", "--repo-root", str(repo), "--out", str(tmp_path / "b")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "pyproject.toml" in bad.stderr and "Traceback" not in bad.stderr
    digest = hashlib.sha256((tmp_path / "b" / "cloudrun" / "Dockerfile").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(b"FROM python:3.12-slim\n").hexdigest()
