"""``hybridshop deploy check``'s logic against recorded responses of the aws/gcloud/terraform
command lines (stand-ins: no cloud account is reachable from here). Each failure must be one
line that says what to run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from hybridshop.packaging.preflight import (
    ONE_TIME_APIS,
    Config,
    Result,
    load_config,
    preflight,
    required_apis_from,
)

REPO = Path(__file__).resolve().parents[2]
DIGEST = "sources-now"


class RecordedResponses:
    """Stand-in for the cloud CLIs: answers recorded from real runs, keyed by command prefix."""

    def __init__(self, answers: dict[tuple[str, ...], Result]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, args: Sequence[str]) -> Result:
        self.calls.append(tuple(args))
        for prefix, result in self.answers.items():
            if tuple(args[: len(prefix)]) == prefix:
                return result
        return Result(127, "", f"{args[0]}: command not found")


APIS = required_apis_from(REPO / "terraform" / "main.tf")
HEALTHY = {
    ("terraform", "version"): Result(0, json.dumps({"terraform_version": "1.11.4"})),
    ("aws", "sts"): Result(0, json.dumps({"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me"})),
    ("gcloud", "auth", "application-default"): Result(0, "ya29.token\n"),
    ("gcloud", "auth", "list"): Result(0, "me@example.com\n"),
    ("gcloud", "services", "list"): Result(0, "\n".join(APIS) + "\n"),
    ("gcloud", "artifacts"): Result(0, "sha256:abc\n"),
}  # fmt: skip


def _repo(tmp_path: Path, runtime: str = "python3.12", arch: str = "x86_64") -> Config:
    (tmp_path / "terraform").mkdir()
    (tmp_path / "terraform" / "terraform.tfvars").write_text(
        'gcp_project_id = "shop-prod"\nname = "shop"\nlambda_architecture = "arm64"\n'
    )
    (tmp_path / "build" / "lambda").mkdir(parents=True)
    (tmp_path / "build" / "lambda" / "manifest.json").write_text(
        json.dumps({"build": {"runtime": runtime, "architecture": arch, "source_digest": DIGEST}})
    )
    (tmp_path / "build" / "rds-ca" / "eu-west-1").mkdir(parents=True)
    (tmp_path / "build" / "cloudrun").mkdir(parents=True)
    (tmp_path / "build" / "cloudrun" / "IMAGE_TAG").write_text("0123abcd\n")
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps({"quota_project_id": "shop-prod"}))
    return load_config(tmp_path, tmp_path / "terraform" / "terraform.tfvars", adc)


def _by_name(findings):  # type: ignore[no-untyped-def]
    return {f.name: f for f in findings}


def test_everything_in_place_passes(tmp_path: Path) -> None:
    cfg = _repo(tmp_path, arch="arm64")
    runner = RecordedResponses(HEALTHY)
    findings = preflight(cfg, runner, DIGEST, APIS)
    assert [f for f in findings if f.status != "ok"] == []
    assert runner.calls[-1][:6] == ("gcloud", "artifacts", "docker", "images", "describe",
            "europe-west1-docker.pkg.dev/shop-prod/shop/shop:0123abcd")  # fmt: skip


def test_tfvars_and_manifest_disagree(tmp_path: Path) -> None:
    cfg = _repo(tmp_path, arch="x86_64")  # tfvars say arm64
    artifacts = _by_name(preflight(cfg, RecordedResponses(HEALTHY), DIGEST, APIS))["artifacts"]
    assert artifacts.status == "fail"
    assert "hybridshop package --runtime python3.12 --arch arm64" in artifacts.message


def test_stale_build(tmp_path: Path) -> None:
    cfg = _repo(tmp_path, arch="arm64")
    artifacts = _by_name(preflight(cfg, RecordedResponses(HEALTHY), "sources-changed", APIS))
    assert artifacts["artifacts"].status == "fail"
    assert "older than the sources" in artifacts["artifacts"].message


@pytest.mark.parametrize(
    ("override", "name", "says"),
    [
        ({("aws", "sts"): Result(255, "", "Unable to locate credentials.")}, "aws credentials", "aws configure"),
        ({("gcloud", "auth", "application-default"): Result(1, "", "Reauthentication required")}, "gcp credentials", "gcloud auth application-default login"),
        ({("gcloud", "auth", "list"): Result(0, "")}, "gcp credentials", "gcloud auth login"),
        ({("gcloud", "services", "list"): Result(0, "run.googleapis.com\n")}, "one-time gcp setup", "gcloud services enable " + " ".join(ONE_TIME_APIS) + " --project shop-prod"),
        ({("gcloud", "artifacts"): Result(1, "", "NOT_FOUND")}, "image", "hybridshop deploy"),
        ({("terraform", "version"): Result(127, "", "not found")}, "terraform", "install Terraform"),
    ],
)  # fmt: skip
def test_each_failure_says_what_to_run(
    tmp_path: Path, override: dict[tuple[str, ...], Result], name: str, says: str
) -> None:
    cfg = _repo(tmp_path, arch="arm64")
    findings = _by_name(
        preflight(cfg, RecordedResponses({**override, **HEALTHY} | override), DIGEST, APIS)
    )
    assert findings[name].status in {"fail", "warn"}
    assert says in findings[name].message
    assert "\n" not in findings[name].message


def test_missing_apis_are_named_and_quota_project_is_checked(tmp_path: Path) -> None:
    cfg = _repo(tmp_path, arch="arm64")
    cfg.adc_file.write_text(json.dumps({"quota_project_id": "someone-else"}))
    partial = {**HEALTHY, ("gcloud", "services", "list"): Result(0, "\n".join(ONE_TIME_APIS))}
    findings = _by_name(preflight(cfg, RecordedResponses(partial), DIGEST, APIS))
    assert (
        findings["apis"].status == "warn"
        and "datastream.googleapis.com" in findings["apis"].message
    )
    assert "set-quota-project shop-prod" in findings["quota project"].message


def test_required_apis_come_from_terraform() -> None:
    assert set(ONE_TIME_APIS) <= set(APIS)
    assert {"datastream.googleapis.com", "run.googleapis.com", "cloudbuild.googleapis.com"} <= set(
        APIS
    )


# -- the whole `hybridshop deploy`, with stand-ins for the terraform, gcloud and aws CLIs -------

STAND_IN = """#!/bin/sh
# Stand-in for the {tool} CLI (no cloud here): records its arguments, answers as recorded.
echo "{tool} $*" >> "$DEPLOY_LOG"
case "$*" in
{cases}
esac
exit 0
"""
CASES = {
    "terraform": [
        ('"version -json"', "echo '{\"terraform_version\": \"1.11.4\"}'"),
        ('"output -raw build_service_account"', "echo projects/shop-prod/serviceAccounts/shop-build@shop-prod.iam.gserviceaccount.com"),
        ('"output -raw build_bucket"', "echo shop-prod-shop-build"),
        ('"output -json analytics_views_pending"', "echo '[\"daily_revenue\"]'"),
    ],
    "gcloud": [
        ('"auth application-default print-access-token"', "echo ya29.token"),
        ('"auth list"*', "echo me@example.com"),
        ('"services list"*', "printf '%s\\n' " + " ".join(APIS)),
        ('"artifacts docker images describe"*', "echo NOT_FOUND >&2; exit 1"),
    ],
    "aws": [('"sts get-caller-identity"*', "echo '{\"Account\": \"123456789012\"}'")],
}  # fmt: skip


def _stand_ins(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for tool, cases in CASES.items():
        body = "\n".join(f"  {pattern}) {answer};;" for pattern, answer in cases)
        path = bin_dir / tool
        path.write_text(STAND_IN.format(tool=tool, cases=body))
        path.chmod(0o755)


def test_deploy_runs_every_step_in_order(
    tmp_path: Path, global_bundle: Path, keep_shipped_bundle: None
) -> None:
    """package -> preflight -> init -> registry/build SA -> Cloud Build as that SA -> apply."""
    import os
    import subprocess
    import sys

    repo = tmp_path / "repo"
    for rel in (
        "pyproject.toml",
        "README.md",
        "app/flask-app/Dockerfile",
        "src/hybridshop/__init__.py",
    ):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x\n")
    (repo / "terraform").mkdir()
    (repo / "terraform" / "main.tf").write_text((REPO / "terraform" / "main.tf").read_text())
    (repo / "terraform" / "terraform.tfvars").write_text(
        'gcp_project_id = "shop-prod"\nname = "shop"\nlambda_architecture = "arm64"\n'
    )
    _stand_ins(tmp_path / "bin")
    log = tmp_path / "calls.log"
    env = dict(
        os.environ,
        PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        DEPLOY_LOG=str(log),
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "adc.json"),
    )
    exe = Path(sys.executable).with_name("hybridshop")
    proc = subprocess.run(
        [str(exe), "deploy", "--auto-approve", "--rds-ca-bundle", str(global_bundle), "--repo-root", str(repo)],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [line for line in log.read_text().splitlines() if not line.startswith(("aws ", "gcloud auth", "gcloud services", "terraform version"))]  # fmt: skip
    tag = (repo / "build" / "cloudrun" / "IMAGE_TAG").read_text().strip()
    var_file = f"-var-file {repo / 'terraform' / 'terraform.tfvars'}"
    assert calls == [
        "terraform init -input=false",
        f"terraform apply -input=false {var_file} -target=google_project_service.this -target=module.registry -auto-approve",
        f"gcloud artifacts docker images describe europe-west1-docker.pkg.dev/shop-prod/shop/shop:{tag} --project shop-prod --format=value(image_summary.digest)",
        "terraform output -raw build_service_account",
        "terraform output -raw build_bucket",
        f"gcloud builds submit {repo / 'build' / 'cloudrun'} --project shop-prod --region europe-west1 "
        f"--config {repo / 'build' / 'cloudrun' / 'cloudbuild.yaml'} "
        f"--substitutions _IMAGE=europe-west1-docker.pkg.dev/shop-prod/shop/shop:{tag} "
        "--service-account projects/shop-prod/serviceAccounts/shop-build@shop-prod.iam.gserviceaccount.com "
        "--gcs-source-staging-dir gs://shop-prod-shop-build/source",
        f"terraform apply -input=false {var_file} -auto-approve",
        "terraform output -json analytics_views_pending",
    ]  # fmt: skip
    manifest = json.loads((repo / "build" / "lambda" / "manifest.json").read_text())
    assert manifest["build"]["architecture"] == "arm64"
    assert "views wait for Datastream's first backfill" in proc.stdout
