"""``hybridshop deploy``: the whole deploy in one command, and ``deploy check``, its preflight.

``hybridshop deploy`` = package the artifacts for the tfvars' runtime/architecture, terraform
init, apply the APIs + registry + build service account (-target), build the shop image with
Cloud Build as that service account if the tag is not in Artifact Registry yet, then apply
everything. Each step prints what it runs; every step is safe to re-run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import typer

from hybridshop.cli.package import repo_root

app = typer.Typer(
    help="Deploy to AWS + GCP (package, image build, terraform apply); `check` first.",
    invoke_without_command=True,
    no_args_is_help=False,
)

_ADC = Path(
    os.environ.get(
        "GOOGLE_APPLICATION_CREDENTIALS",
        Path.home() / ".config" / "gcloud" / "application_default_credentials.json",
    )
)
_SYMBOL = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def _config(tfvars: Path | None, root: Path | None = None):  # type: ignore[no-untyped-def]
    from hybridshop.packaging.preflight import load_config

    root = root or repo_root()
    return load_config(root, tfvars or root / "terraform" / "terraform.tfvars", _ADC)


def _print_findings(findings) -> int:  # type: ignore[no-untyped-def]
    failures = 0
    for f in findings:
        color = {"ok": typer.colors.GREEN, "warn": typer.colors.YELLOW}.get(
            f.status, typer.colors.RED
        )
        typer.secho(f"[{_SYMBOL[f.status]}] {f.name}: {f.message}", fg=color)
        failures += f.status == "fail"
    return failures


def _preflight(cfg, include_image: bool = True):  # type: ignore[no-untyped-def]
    from hybridshop.packaging.lambda_zip import source_digest
    from hybridshop.packaging.preflight import preflight, required_apis_from, run_command

    apis = required_apis_from(cfg.repo / "terraform" / "main.tf")
    return preflight(cfg, run_command, source_digest(), apis, include_image)


@app.command("check")
def check(
    tfvars: Path | None = typer.Option(
        None, "--tfvars", help="Default: terraform/terraform.tfvars."
    ),
) -> None:
    """Preflight before `terraform apply`: credentials, one-time GCP setup, APIs, artifacts, image."""
    cfg = _config(tfvars)
    failures = _print_findings(_preflight(cfg))
    if failures:
        typer.secho(
            f"{failures} check(s) failed: fix them and run `hybridshop deploy check` again",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)


def _run(args: list[str], cwd: Path) -> None:
    typer.secho("+ " + " ".join(args), fg=typer.colors.CYAN)
    if subprocess.run(args, cwd=cwd, check=False).returncode != 0:
        typer.secho(
            f"error: `{' '.join(args)}` failed (see above); fix it and re-run `hybridshop deploy`",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)


def _output(name: str, cwd: Path) -> str:
    proc = subprocess.run(
        ["terraform", "output", "-raw", name], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        typer.secho(
            f"error: terraform output {name}: {proc.stderr.strip()}", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(1)
    return proc.stdout.strip()


@app.callback()
def deploy(
    ctx: typer.Context,
    tfvars: Path | None = typer.Option(
        None, "--tfvars", help="Default: terraform/terraform.tfvars."
    ),
    auto_approve: bool = typer.Option(
        False, "--auto-approve", help="Do not ask before the final apply."
    ),
    rds_ca_bundle: Path | None = typer.Option(
        None,
        "--rds-ca-bundle",
        exists=True,
        dir_okay=False,
        help="Local copy of the RDS CA bundle (as for `hybridshop package`).",
    ),
    root_opt: Path | None = typer.Option(
        None, "--repo-root", hidden=True, help="Repository root (default: detected)."
    ),
) -> None:
    """Package, build the image, `terraform apply`: the whole deploy (see docs/deploy.md)."""
    if ctx.invoked_subcommand is not None:
        return
    from hybridshop.cli.package import build_artifacts
    from hybridshop.packaging import PackagingError
    from hybridshop.packaging.preflight import check_image, image_tag, run_command

    cfg = _config(tfvars, root_opt)
    tf = cfg.repo / "terraform"
    if not (tf / "terraform.tfvars").is_file() and tfvars is None:
        typer.secho(
            "error: copy terraform/terraform.tfvars.example to terraform/terraform.tfvars and set gcp_project_id",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    var_file = ["-var-file", str((tfvars or tf / "terraform.tfvars").resolve())]
    typer.secho("== 1/5 package", bold=True)
    typer.echo(f"+ hybridshop package --runtime {cfg.runtime} --arch {cfg.architecture}")
    try:
        build_artifacts(cfg.repo, cfg.build_dir, cfg.runtime, cfg.architecture, rds_ca_bundle)
    except PackagingError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.secho("== 2/5 preflight", bold=True)
    findings = _preflight(cfg, include_image=False)
    if _print_findings(findings):
        raise typer.Exit(1)
    typer.secho("== 3/5 terraform init + APIs, registry, build service account", bold=True)
    _run(["terraform", "init", "-input=false"], tf)
    _run(["terraform", "apply", "-input=false", *var_file, "-target=google_project_service.this", "-target=module.registry", *(["-auto-approve"] if auto_approve else [])], tf)  # fmt: skip
    typer.secho("== 4/5 shop image (Cloud Build)", bold=True)
    if check_image(cfg, run_command).status == "ok":
        typer.echo(f"{cfg.image(image_tag(cfg) or '')} already built")
    else:
        ctx_dir = cfg.build_dir / "cloudrun"
        _run(["gcloud", "builds", "submit", str(ctx_dir), "--project", cfg.project, "--region", cfg.gcp_region,
              "--config", str(ctx_dir / "cloudbuild.yaml"), "--substitutions", f"_IMAGE={cfg.image(image_tag(cfg) or '')}",
              "--service-account", _output("build_service_account", tf),
              "--gcs-source-staging-dir", f"gs://{_output('build_bucket', tf)}/source"], cfg.repo)  # fmt: skip
    typer.secho("== 5/5 terraform apply", bold=True)
    _run(
        [
            "terraform",
            "apply",
            "-input=false",
            *var_file,
            *(["-auto-approve"] if auto_approve else []),
        ],
        tf,
    )
    pending = subprocess.run(
        ["terraform", "output", "-json", "analytics_views_pending"],
        cwd=tf,
        capture_output=True,
        text=True,
        check=False,
    )
    if pending.returncode == 0 and pending.stdout.strip() not in ("", "[]"):
        typer.secho(
            "BigQuery views wait for Datastream's first backfill: run `hybridshop deploy` again once `terraform output check_commands` shows rows in BigQuery.",
            fg=typer.colors.YELLOW,
        )
    typer.secho(
        "deployed: `terraform -chdir=terraform output check_commands` lists how to verify each part",
        fg=typer.colors.GREEN,
    )
