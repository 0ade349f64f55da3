"""The Cloud Run build context: exactly the files the shop's Dockerfile copies, in a folder
Cloud Build can take as is (``gcloud builds submit build/cloudrun --tag ...``).

The image tag is derived from the context's content, so the same sources always give the same
tag (Artifact Registry tags are immutable; ``:latest`` is never used).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from hybridshop.packaging.lambda_zip import PackagingError

DOCKERFILE = Path("app/flask-app/Dockerfile")
# What the Dockerfile COPYs (it builds from the repository root).
CONTEXT_FILES = (Path("pyproject.toml"), Path("README.md"))
CONTEXT_DIRS = (Path("src/hybridshop"), Path("app/flask-app"))
CLOUDBUILD_YAML = """\
# Written by `hybridshop package`; used by `hybridshop deploy` (gcloud builds submit --config).
steps:
  - name: gcr.io/cloud-builders/docker
    args: ["build", "--tag", "${_IMAGE}", "."]
images: ["${_IMAGE}"]
options:
  logging: CLOUD_LOGGING_ONLY
"""
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}


def _wanted(path: Path) -> bool:
    return not (_IGNORED_PARTS & set(path.parts)) and path.suffix not in {".pyc", ".pyo"}


def context_files(repo_root: Path) -> list[Path]:
    """Repository-relative paths that go into the context, sorted."""
    missing = [
        p for p in (DOCKERFILE, *CONTEXT_FILES, *CONTEXT_DIRS) if not (repo_root / p).exists()
    ]
    if missing:
        raise PackagingError(
            "cannot build the Cloud Run context, missing in "
            f"{repo_root}: {', '.join(str(m) for m in missing)}"
        )
    files = list(CONTEXT_FILES)
    for folder in CONTEXT_DIRS:
        files.extend(
            p.relative_to(repo_root)
            for p in (repo_root / folder).rglob("*")
            if p.is_file() and _wanted(p.relative_to(repo_root))
        )
    return sorted(set(files))


def build_cloudrun_context(repo_root: Path, out_dir: Path) -> str:
    """Recreate ``out_dir`` with the context (+ Dockerfile at its root); return the image tag."""
    files = context_files(repo_root)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    digest = hashlib.sha256()
    for rel in files:
        data = (repo_root / rel).read_bytes()
        digest.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(data).digest())
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    # Cloud Build's --tag uses ./Dockerfile of the context.
    shutil.copyfile(repo_root / DOCKERFILE, out_dir / "Dockerfile")
    # For `gcloud builds submit --config` with the build's own service account, which needs
    # logs in Cloud Logging only (no default logs bucket).
    (out_dir / "cloudbuild.yaml").write_text(CLOUDBUILD_YAML)
    tag = digest.hexdigest()[:16]
    (out_dir / "IMAGE_TAG").write_text(tag + "\n")
    return tag
