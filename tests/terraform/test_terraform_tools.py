"""terraform fmt / init+validate (offline, aws provider mirror) and checkov on terraform/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from terraform.tfcli import NO_MIRROR, TERRAFORM, cli_env, mirror_root
from terraform.tfhcl import MODULES, TF_ROOT, load

CHECKOV_CANDIDATES = [
    os.environ.get("CHECKOV_BIN", ""),
    str(Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "checkov"),
    shutil.which("checkov") or "",
]


def _aws_only(path: Path) -> bool:
    text = (path / "versions.tf").read_text()
    return (
        "hashicorp/aws" in text
        and "hashicorp/google" not in text
        and "hashicorp/random" not in text
    )


AWS_MODULES = [m for m in MODULES if _aws_only(m)]
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@needs_terraform
def test_fmt_check() -> None:
    proc = _run([TERRAFORM or "terraform", "fmt", "-check", "-recursive", "-no-color"], TF_ROOT)
    assert proc.returncode == 0, (
        f"not formatted (run terraform fmt -recursive terraform):\n{proc.stdout}"
    )


def test_aws_modules_need_only_the_aws_provider() -> None:
    assert {m.name for m in AWS_MODULES} == {
        "aws_network",
        "aws_database",
        "aws_api",
        "aws_bootstrap",
        "aws_vpn",
    }


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if TERRAFORM is None:
        pytest.skip("terraform is not on PATH")
    mirror = mirror_root()
    if mirror is None:
        pytest.skip(NO_MIRROR)
    tmp = tmp_path_factory.mktemp("tfcli")
    env = cli_env(tmp, mirror)
    env["TF_DATA_DIR"] = str(tmp / "data")  # set per module below
    return env


def _validate(
    module_dir: Path, env: dict[str, str], workdir: Path
) -> subprocess.CompletedProcess[str]:
    target = workdir / module_dir.name
    shutil.copytree(module_dir, target)
    env = dict(env, TF_DATA_DIR=str(target / ".terraform"))
    init = _run(
        [TERRAFORM or "terraform", "init", "-backend=false", "-input=false", "-no-color"],
        target,
        env,
    )
    assert init.returncode == 0, init.stderr
    return _run([TERRAFORM or "terraform", "validate", "-no-color", "-json"], target, env)


@pytest.mark.parametrize("module_dir", AWS_MODULES, ids=lambda p: p.name)
def test_validate_aws_module(module_dir: Path, cli_config: dict[str, str], tmp_path: Path) -> None:
    proc = _validate(module_dir, cli_config, tmp_path)
    result = json.loads(proc.stdout)
    assert result["valid"], json.dumps(result["diagnostics"], indent=1)


def test_validate_reports_a_misspelt_argument(cli_config: dict[str, str], tmp_path: Path) -> None:
    """Proof that validate really checks arguments against the mirrored provider."""
    broken = tmp_path / "src" / "aws_network"
    shutil.copytree(TF_ROOT / "modules" / "aws_network", broken)
    main = broken / "main.tf"
    main.write_text(
        main.read_text().replace("enable_dns_support   = true", "enable_dns_suport = true")
    )
    proc = _validate(broken, cli_config, tmp_path / "work")
    result = json.loads(proc.stdout)
    assert not result["valid"]
    assert "enable_dns_suport" in json.dumps(result["diagnostics"])


def _checkov() -> str | None:
    for candidate in CHECKOV_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _skip_reasons() -> dict[str, str]:
    text = (TF_ROOT / ".checkov.yaml").read_text()
    return dict(re.findall(r"^\s*-\s*(CKV\w+)\s*#\s*(.*)$", text, re.M))


def test_every_checkov_skip_has_a_reason() -> None:
    text = (TF_ROOT / ".checkov.yaml").read_text()
    listed = re.findall(r"^\s*-\s*(CKV\w+)", text, re.M)
    reasons = _skip_reasons()
    assert listed, "skip list is empty or unreadable"
    assert set(listed) == set(reasons), f"skips without a reason: {set(listed) - set(reasons)}"
    short = {k: v for k, v in reasons.items() if len(v.split()) < 8}
    assert not short, f"reasons too short to explain anything: {short}"


def test_checkov_has_no_failed_checks() -> None:
    checkov = _checkov()
    if checkov is None:
        message = "checkov not installed (.ci/run installs it in .venv-checkov; or set CHECKOV_BIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    proc = _run(
        [
            checkov,
            "-d",
            str(TF_ROOT),
            "--config-file",
            str(TF_ROOT / ".checkov.yaml"),
            "-o",
            "json",
        ],
        TF_ROOT.parent,
        dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false"),
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 100, "checkov scanned suspiciously little"
    # Every module is really scanned (a parse error would silently drop a folder).
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    assert load(TF_ROOT).labelled("module")
