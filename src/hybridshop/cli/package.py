"""``hybridshop package``: build the deployment artifacts Terraform and Cloud Build consume.

Writes ``<repo>/build/lambda/<Function>.zip`` (+ ``manifest.json``), ``<repo>/build/rds-ca/``
(one root CA per region) and ``<repo>/build/cloudrun/``: the folders Terraform reads, wherever
the command is run from.
"""

from __future__ import annotations

from pathlib import Path

import typer


def repo_root() -> Path:
    """The source checkout this package was installed from (src layout), else the cwd."""
    import hybridshop

    candidate = Path(hybridshop.__file__).resolve().parents[2]
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd()


def default_build_dir(root: Path | None = None) -> Path:
    """``<repo>/build``: where terraform/main.tf looks (``${path.root}/../build``)."""
    return (root or repo_root()) / "build"


def package(
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Output folder (lambda/, rds-ca/, cloudrun/ inside); default: <repo>/build, "
        "the folder Terraform reads, whatever the current directory.",
    ),
    runtime: str = typer.Option(
        "python3.12", "--runtime", help="Lambda runtime: python3.12 or python3.13."
    ),
    arch: str = typer.Option("x86_64", "--arch", help="Lambda architecture: x86_64 or arm64."),
    lambdas: bool = typer.Option(True, "--lambdas/--no-lambdas", help="Build the Lambda zips."),
    cloudrun: bool = typer.Option(
        True, "--cloudrun/--no-cloudrun", help="Build the Cloud Run context."
    ),
    repo_root_opt: Path | None = typer.Option(
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
    from hybridshop.packaging import PackagingError

    root = repo_root_opt or repo_root()
    try:
        build_artifacts(
            root, out or default_build_dir(root), runtime, arch, rds_ca_bundle, lambdas, cloudrun
        )
    except PackagingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


def build_artifacts(
    root: Path,
    out: Path,
    runtime: str,
    arch: str,
    rds_ca_bundle: Path | None = None,
    lambdas: bool = True,
    cloudrun: bool = True,
) -> None:
    """What ``hybridshop package`` (and ``deploy``) builds; raises PackagingError."""
    from hybridshop.packaging import build_cloudrun_context, build_lambda_zips
    from hybridshop.settings import state_dir

    if lambdas:
        from hybridshop.packaging.rds_ca import ensure_rds_ca_bundle, write_regional_roots

        bundle = ensure_rds_ca_bundle(rds_ca_bundle)
        roots = write_regional_roots(bundle, out / "rds-ca")
        typer.echo(f"RDS CA bundle: {bundle} ({len(roots)} regional roots in {out / 'rds-ca'})")
        manifest = build_lambda_zips(out / "lambda", state=state_dir(), runtime=runtime, arch=arch)
        for name, info in manifest.items():
            size = (out / "lambda" / f"{name}.zip").stat().st_size
            typer.echo(
                f"{out / 'lambda' / (name + '.zip')}  {size / 1e6:.1f} MB  sha256={info['sha256']}"
            )
    if cloudrun:
        tag = build_cloudrun_context(root, out / "cloudrun")
        typer.echo(
            f"{out / 'cloudrun'}/  image tag {tag} (`hybridshop deploy` builds and pushes it)"
        )
