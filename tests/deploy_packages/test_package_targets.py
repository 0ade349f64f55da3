"""``hybridshop package`` for every Lambda runtime and architecture Terraform accepts (D3), into
the repository's build folder wherever it runs from (D8), with the manifest Terraform's
preconditions read (D9) and one regional root CA per region for Datastream (D5).

The psycopg2-binary wheels come from PyPI once per machine (cached under the state dir)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from deploy_packages.conftest import make_cert as _cert
from hybridshop.cli.package import default_build_dir, repo_root
from hybridshop.packaging import LambdaTarget, build_lambda_zips
from hybridshop.packaging.lambda_zip import PLATFORMS, pip_download_command, source_digest
from hybridshop.packaging.rds_ca import regional_roots, write_regional_roots
from hybridshop.settings import state_dir

REPO = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("hybridshop")
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


@pytest.mark.parametrize("runtime", ["python3.12", "python3.13"])
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_builds_for_every_runtime_and_architecture(arch: str, runtime: str, tmp_path: Path) -> None:
    """Today's manylinux2014-only request finds no aarch64 psycopg2-binary wheel (D3). One
    function is enough here (the CLI test below builds all of them for arm64)."""
    target = LambdaTarget("GetItem", "hybridshop.lambda_functions.get_item")
    build_lambda_zips(tmp_path, state=state_dir(), runtime=runtime, arch=arch, targets=[target])
    py = runtime.removeprefix("python").replace(".", "")
    names = zipfile.ZipFile(tmp_path / "GetItem.zip").namelist()
    native = [n for n in names if n.startswith("psycopg2/_psycopg.")]
    assert native == [f"psycopg2/_psycopg.cpython-{py}-{MACHINE[arch]}-linux-gnu.so"], native
    build = json.loads((tmp_path / "manifest.json").read_text())["build"]
    assert build == {"runtime": runtime, "architecture": arch, "source_digest": source_digest()}


def test_pip_is_asked_for_both_manylinux_tags(tmp_path: Path) -> None:
    for arch, machine in MACHINE.items():
        cmd = pip_download_command("psycopg2-binary", "2.9.10", "python3.12", arch, tmp_path)
        platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
        assert platforms == [f"manylinux2014_{machine}", f"manylinux_2_28_{machine}"]
        assert set(PLATFORMS[arch]) == set(platforms)


def test_source_digest_follows_the_sources(tmp_path: Path) -> None:
    pkg = tmp_path / "hybridshop"
    (pkg / "db" / "migrations").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "db" / "migrations" / "0001.sql").write_text("select 1;\n")
    (pkg / "notes.txt").write_text("not a source")
    first = source_digest(pkg)
    (pkg / "notes.txt").write_text("still not a source")
    assert source_digest(pkg) == first
    (pkg / "db" / "migrations" / "0001.sql").write_text("select 2;\n")
    assert source_digest(pkg) != first


def test_regional_roots_pick_one_self_signed_root_per_region(global_bundle: Path) -> None:
    roots = regional_roots(global_bundle.read_bytes())
    assert set(roots) == {
        ("eu-west-1", "rds-ca-rsa2048-g1"),
        ("eu-west-1", "rds-ca-ecc384-g1"),
        ("us-east-1", "rds-ca-rsa2048-g1"),
    }
    for pem in roots.values():
        assert len(x509.load_pem_x509_certificates(pem)) == 1


def test_default_out_is_the_repository_build_folder() -> None:
    assert repo_root() == REPO
    assert default_build_dir() == REPO / "build"


def test_cli_arm64_from_another_folder_writes_where_terraform_reads(
    tmp_path: Path, global_bundle: Path, keep_shipped_bundle: None
) -> None:
    """Run from terraform/ (or anywhere), the output lands in <repo>/build (D8)."""
    fake_repo = tmp_path / "repo"
    for rel in (
        "pyproject.toml",
        "README.md",
        "app/flask-app/Dockerfile",
        "src/hybridshop/__init__.py",
    ):
        (fake_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake_repo / rel).write_text("x\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [str(EXE), "package", "--arch", "arm64", "--runtime", "python3.13",
         "--rds-ca-bundle", str(global_bundle), "--repo-root", str(fake_repo)],
        cwd=elsewhere, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not (elsewhere / "build").exists()
    build = fake_repo / "build"
    manifest = json.loads((build / "lambda" / "manifest.json").read_text())
    assert manifest["build"]["architecture"] == "arm64"
    assert manifest["build"]["runtime"] == "python3.13"
    assert (build / "rds-ca" / "eu-west-1" / "rds-ca-rsa2048-g1.pem").is_file()
    assert (build / "cloudrun" / "IMAGE_TAG").is_file()


def test_a_bundle_without_regional_roots_is_refused(tmp_path: Path) -> None:
    from hybridshop.packaging import PackagingError

    bundle = tmp_path / "b.pem"
    bundle.write_bytes(_cert("Amazon RDS Root 2019 CA"))
    with pytest.raises(PackagingError, match="no regional Amazon RDS root"):
        write_regional_roots(bundle, tmp_path / "out")
