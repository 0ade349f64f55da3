"""``hybridshop package``: build the deployment artifacts Terraform and Cloud Build consume.

Writes ``build/lambda/<Function>.zip`` (+ ``manifest.json``) and ``build/cloudrun/``.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _repo_root() -> Path:
    """The source checkout this package was installed from (src layout), else the cwd."""
    import hybridshop

    candidate = Path(hybridshop.__file__).resolve().parents[2]
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd()


def package(
    out: Path = typer.Option(
        Path("build"), "--out", help="Output folder (lambda/ and cloudrun/ inside)."
    ),
    runtime: str = typer.Option(
        "python3.12", "--runtime", help="Lambda runtime: python3.12 or python3.13."
    ),
    arch: str = typer.Option("x86_64", "--arch", help="Lambda architecture: x86_64 or arm64."),
    lambdas: bool = typer.Option(True, "--lambdas/--no-lambdas", help="Build the Lambda zips."),
    cloudrun: bool = typer.Option(
        True, "--cloudrun/--no-cloudrun", help="Build the Cloud Run context."
    ),
    repo_root: Path | None = typer.Option(
        None, "--repo-root", help="Repository root (default: detected)."
    ),
    rds_ca_bundle: Path | None = typer.Option(
        None,
        "--rds-ca-bundle",
        exists=True,
        dir_okay=False,
        help="Local copy of the RDS CA bundle (default: download it from AWS's truststore once).",
    ),
) -> None:
    """Build reproducible Lambda zips and the Cloud Run build context (same inputs, same bytes)."""
    from hybridshop.packaging import PackagingError, build_cloudrun_context, build_lambda_zips
    from hybridshop.settings import state_dir

    root = repo_root or _repo_root()
    try:
        if lambdas:
            from hybridshop.packaging.rds_ca import ensure_rds_ca_bundle

            bundle = ensure_rds_ca_bundle(rds_ca_bundle)
            typer.echo(f"RDS CA bundle: {bundle}")
            manifest = build_lambda_zips(
                out / "lambda", state=state_dir(), runtime=runtime, arch=arch
            )
            for name, info in manifest.items():
                size = (out / "lambda" / f"{name}.zip").stat().st_size
                typer.echo(
                    f"{out / 'lambda' / (name + '.zip')}  {size / 1e6:.1f} MB  sha256={info['sha256']}"
                )
        if cloudrun:
            tag = build_cloudrun_context(root, out / "cloudrun")
            typer.echo(f"{out / 'cloudrun'}/  image tag {tag}")
            typer.echo(
                "build the image: gcloud builds submit "
                f"{out / 'cloudrun'} --tag REGION-docker.pkg.dev/PROJECT/hybridshop/shop:{tag}"
            )
    except PackagingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
