"""``hybridshop deploy check``: what must hold before ``terraform apply`` can succeed.

Each check reads the world through a ``Runner`` (the real one runs the ``aws``/``gcloud``
command lines; tests pass recorded responses) and returns one ``Finding``: ok, a warning, or a
failure whose text is one line saying what to run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Must be on before Terraform can enable anything (google_project_service reads through them).
ONE_TIME_APIS = ("cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    def __call__(self, args: Sequence[str]) -> Result: ...


def run_command(args: Sequence[str]) -> Result:
    """The real runner: the command line, 60 s at most; a missing tool is returncode 127."""
    if shutil.which(args[0]) is None:
        return Result(127, "", f"{args[0]}: command not found")
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return Result(124, "", f"{' '.join(args)} timed out")
    return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class Finding:
    name: str
    status: str  # "ok", "warn" or "fail"
    message: str


@dataclass(frozen=True)
class Config:
    """What the checks need from terraform.tfvars and the checkout."""

    repo: Path
    project: str
    gcp_region: str
    aws_region: str
    name: str
    runtime: str
    architecture: str
    adc_file: Path

    @property
    def build_dir(self) -> Path:
        return self.repo / "build"

    def image(self, tag: str) -> str:
        return f"{self.gcp_region}-docker.pkg.dev/{self.project}/{self.name}/shop:{tag}"


_ASSIGN = re.compile(r'^\s*([a-z_][a-z0-9_]*)\s*=\s*"([^"]*)"', re.M)
DEFAULTS = {
    "gcp_region": "europe-west1",
    "aws_region": "eu-west-1",
    "name": "hybridshop",
    "lambda_runtime": "python3.12",
    "lambda_architecture": "x86_64",
}


def read_tfvars(path: Path) -> dict[str, str]:
    """Top-level string assignments of a tfvars file (what the checks need), defaults filled."""
    values = dict(DEFAULTS)
    if path.is_file():
        values.update(_ASSIGN.findall(path.read_text(encoding="utf-8")))
    return values


def load_config(repo: Path, tfvars: Path, adc_file: Path) -> Config:
    values = read_tfvars(tfvars)
    return Config(
        repo=repo,
        project=values.get("gcp_project_id", ""),
        gcp_region=values["gcp_region"],
        aws_region=values["aws_region"],
        name=values["name"],
        runtime=values["lambda_runtime"],
        architecture=values["lambda_architecture"],
        adc_file=adc_file,
    )


def _first_line(result: Result) -> str:
    text = (result.stderr or result.stdout).strip().splitlines()
    return text[-1] if text else f"exit code {result.returncode}"


def check_project(cfg: Config, run: Runner) -> Finding:
    if not cfg.project or cfg.project == "my-gcp-project":
        return Finding("tfvars", "fail", "set gcp_project_id in terraform/terraform.tfvars")
    return Finding("tfvars", "ok", f"project {cfg.project}, environment {cfg.name}")


def check_aws_credentials(cfg: Config, run: Runner) -> Finding:
    res = run(["aws", "sts", "get-caller-identity", "--output", "json"])
    if res.returncode == 127:
        return Finding(
            "aws credentials", "fail", "install the AWS CLI v2 (aws), then run `aws configure`"
        )
    if res.returncode != 0:
        return Finding(
            "aws credentials",
            "fail",
            f"run `aws configure` or set AWS_PROFILE ({_first_line(res)})",
        )
    account = json.loads(res.stdout).get("Account", "?")
    return Finding("aws credentials", "ok", f"account {account}")


def check_gcp_credentials(cfg: Config, run: Runner) -> Finding:
    res = run(["gcloud", "auth", "application-default", "print-access-token"])
    if res.returncode == 127:
        return Finding("gcp credentials", "fail", "install the Google Cloud CLI (gcloud)")
    if res.returncode != 0:
        return Finding("gcp credentials", "fail", "run `gcloud auth application-default login`")
    active = run(["gcloud", "auth", "list", "--filter=status:ACTIVE", "--format=value(account)"])
    if active.returncode != 0 or not active.stdout.strip():
        return Finding(
            "gcp credentials", "fail", "run `gcloud auth login` (Cloud Build runs as you)"
        )
    return Finding("gcp credentials", "ok", f"gcloud as {active.stdout.split()[0]}")


def check_quota_project(cfg: Config, run: Runner) -> Finding:
    try:
        quota = json.loads(cfg.adc_file.read_text()).get("quota_project_id")
    except (OSError, ValueError):
        quota = None
    if quota != cfg.project:
        return Finding(
            "quota project",
            "warn",
            f"run `gcloud auth application-default set-quota-project {cfg.project}` "
            "(Terraform also bills quota to the project itself: user_project_override)",
        )
    return Finding("quota project", "ok", quota)


def enabled_apis(cfg: Config, run: Runner) -> tuple[Result, set[str]]:
    res = run(["gcloud", "services", "list", "--enabled", "--project", cfg.project, "--format=value(config.name)"])  # fmt: skip
    return res, set(res.stdout.split()) if res.returncode == 0 else set()


def check_one_time_setup(cfg: Config, run: Runner) -> Finding:
    res, enabled = enabled_apis(cfg, run)
    missing = [api for api in ONE_TIME_APIS if api not in enabled]
    if res.returncode != 0 or missing:
        apis = " ".join(missing or ONE_TIME_APIS)
        return Finding(
            "one-time gcp setup",
            "fail",
            f"run `gcloud services enable {apis} --project {cfg.project}`",
        )
    return Finding("one-time gcp setup", "ok", "Cloud Resource Manager and Service Usage on")


def check_required_apis(cfg: Config, run: Runner, required: Sequence[str]) -> Finding:
    res, enabled = enabled_apis(cfg, run)
    missing = sorted(set(required) - enabled)
    if res.returncode != 0:
        return Finding("apis", "warn", f"cannot list the project's APIs ({_first_line(res)})")
    if missing:
        return Finding(
            "apis", "warn", f"terraform apply enables {', '.join(missing)} (takes a minute or two)"
        )
    return Finding("apis", "ok", f"{len(required)} APIs enabled")


def check_artifacts(cfg: Config, run: Runner, source_digest: str) -> Finding:
    manifest_path = cfg.build_dir / "lambda" / "manifest.json"
    try:
        build = json.loads(manifest_path.read_text())["build"]
    except (OSError, ValueError, KeyError):
        return Finding(
            "artifacts", "fail", "run `hybridshop package` (no build/lambda/manifest.json)"
        )
    if (build.get("runtime"), build.get("architecture")) != (cfg.runtime, cfg.architecture):
        return Finding(
            "artifacts",
            "fail",
            f"run `hybridshop package --runtime {cfg.runtime} --arch {cfg.architecture}` "
            f"(built for {build.get('runtime')}/{build.get('architecture')})",
        )
    if build.get("source_digest") != source_digest:
        return Finding(
            "artifacts", "fail", "run `hybridshop package` (the zips are older than the sources)"
        )
    if not (cfg.build_dir / "rds-ca" / cfg.aws_region).is_dir():
        return Finding(
            "artifacts", "fail", f"run `hybridshop package` (no RDS root CA for {cfg.aws_region})"
        )
    return Finding(
        "artifacts", "ok", f"zips for {cfg.runtime}/{cfg.architecture} match the sources"
    )


def image_tag(cfg: Config) -> str | None:
    path = cfg.build_dir / "cloudrun" / "IMAGE_TAG"
    return path.read_text().strip() if path.is_file() else None


def check_image(cfg: Config, run: Runner) -> Finding:
    tag = image_tag(cfg)
    if tag is None:
        return Finding("image", "fail", "run `hybridshop package` (no build/cloudrun/IMAGE_TAG)")
    res = run(["gcloud", "artifacts", "docker", "images", "describe", cfg.image(tag), "--project", cfg.project, "--format=value(image_summary.digest)"])  # fmt: skip
    if res.returncode != 0:
        return Finding(
            "image", "warn", f"{cfg.image(tag)} not built yet: `hybridshop deploy` builds it"
        )
    return Finding("image", "ok", cfg.image(tag))


def check_tools(cfg: Config, run: Runner) -> Finding:
    res = run(["terraform", "version", "-json"])
    if res.returncode != 0:
        return Finding(
            "terraform",
            "fail",
            "install Terraform >= 1.7 (https://developer.hashicorp.com/terraform/install)",
        )
    version = json.loads(res.stdout).get("terraform_version", "?")
    return Finding("terraform", "ok", version)


def preflight(
    cfg: Config,
    run: Runner,
    source_digest: str,
    required_apis: Sequence[str],
    include_image: bool = True,
) -> list[Finding]:
    """Every check, in the order a user fixes them (``deploy`` builds the image itself)."""
    checks: list[Callable[[Config, Runner], Finding]] = [
        check_tools,
        check_project,
        check_aws_credentials,
        check_gcp_credentials,
        check_quota_project,
        check_one_time_setup,
        lambda c, r: check_required_apis(c, r, required_apis),
        lambda c, r: check_artifacts(c, r, source_digest),
        *([check_image] if include_image else []),
    ]
    return [check(cfg, run) for check in checks]


def required_apis_from(main_tf: Path) -> list[str]:
    """The services terraform/main.tf enables (local.gcp_services)."""
    block = re.search(r"gcp_services\s*=\s*\[(.*?)\]", main_tf.read_text(), re.S)
    return re.findall(r'"([a-z0-9.-]+\.googleapis\.com)"', block.group(1)) if block else []
