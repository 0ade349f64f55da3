"""``terraform test`` suites (``*.tftest.hcl``, mocked AWS provider) of the AWS modules.

Each module is copied to a temporary folder with its siblings (so relative sources resolve),
initialised against the offline provider mirror, and tested. A failing run prints terraform's
own report.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from terraform.tfcli import NO_MIRROR, TERRAFORM, cli_env, mirror_root
from terraform.tfhcl import MODULES, TF_ROOT

SUITES = [m for m in MODULES if list((m / "tests").glob("*.tftest.hcl"))]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    if TERRAFORM is None:
        pytest.skip("terraform is not on PATH (install Terraform >= 1.7 to run the terraform test suites)")
    mirror = mirror_root()
    if mirror is None:
        pytest.skip(NO_MIRROR)
    tmp = tmp_path_factory.mktemp("tftest")
    shutil.copytree(TF_ROOT / "modules", tmp / "modules")
    return tmp / "modules", cli_env(tmp, mirror)


def test_the_aws_modules_have_suites() -> None:
    assert {m.name for m in SUITES} >= {"aws_database", "aws_bootstrap", "aws_api", "aws_network"}


@pytest.mark.parametrize("module_dir", SUITES, ids=lambda p: p.name)
def test_terraform_test_suite(module_dir: Path, workspace: tuple[Path, dict[str, str]]) -> None:
    modules, env = workspace
    cwd = modules / module_dir.name
    init = subprocess.run(
        [TERRAFORM or "terraform", "init", "-backend=false", "-input=false", "-no-color"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    proc = subprocess.run(
        [TERRAFORM or "terraform", "test", "-no-color"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout or "Success!" in proc.stdout, proc.stdout
