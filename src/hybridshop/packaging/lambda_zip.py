"""Lambda deployment zips: only the ``hybridshop`` modules a handler imports, plus the
psycopg2-binary manylinux wheel for the target runtime and architecture (boto3 is left out:
the Lambda runtime ships it).

The module set is found by reading import statements (``ast``), not by importing, so a
module that is never imported by a handler (CLI, gateway, web, embedded server) never ships.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import hybridshop
from hybridshop.lambda_functions import FUNCTIONS
from hybridshop.packaging.reproducible import file_digests, write_zip

RUNTIMES = {"python3.12": "3.12", "python3.13": "3.13"}
# Every manylinux tag a wheel may carry for the Lambda runtime (glibc 2.34 on Amazon Linux 2023),
# oldest first: psycopg2-binary ships aarch64 wheels only as manylinux_2_28 since 2.9.12, older
# releases only as manylinux2014. pip accepts a repeated --platform and picks the best match.
PLATFORMS: dict[str, tuple[str, ...]] = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}
# Third-party top-level modules a handler may import: psycopg2 is bundled, boto3/botocore
# come with the runtime. Anything else is an error rather than a zip that fails at cold start.
BUNDLED = {"psycopg2": "psycopg2-binary"}
RUNTIME_PROVIDED = {"boto3", "botocore"}
_SKIP_DIRS = {"__pycache__"}


class PackagingError(RuntimeError):
    """The artifacts cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class LambdaTarget:
    """One zip to build: its name (``<name>.zip``) and its handler module."""

    name: str
    module: str


BOOTSTRAP = LambdaTarget(name="Bootstrap", module="hybridshop.lambda_functions.bootstrap")


def default_targets() -> list[LambdaTarget]:
    """The API functions of the registry plus the database bootstrap."""
    return [LambdaTarget(f.name, f.module) for f in FUNCTIONS] + [BOOTSTRAP]


def _package_root() -> Path:
    return Path(hybridshop.__file__).resolve().parent


def _module_file(root: Path, module: str) -> Path | None:
    """Source file of a ``hybridshop.*`` module (package ``__init__`` or plain module)."""
    rel = Path(*module.split(".")[1:])
    package_init = root / rel / "__init__.py"
    if package_init.is_file():
        return package_init
    plain = (root / rel).with_suffix(".py")
    return plain if plain.is_file() else None


def _imports(source: Path, module: str) -> set[str]:
    """Absolute names imported by ``source`` (relative imports resolved; nested ones too)."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    is_package = source.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            names.add(base)
            # ``from hybridshop.core import catalog`` may import a submodule.
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def module_closure(entry: str, root: Path | None = None) -> tuple[set[str], set[str]]:
    """All ``hybridshop`` modules reachable from ``entry`` and the third-party top-level names.

    Parent packages are included (their ``__init__`` runs on import).
    """
    root = root or _package_root()
    seen: set[str] = set()
    third_party: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        top = name.split(".")[0]
        if top != "hybridshop":
            if top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
            continue
        path = _module_file(root, name)
        if path is None:
            continue  # ``from pkg import some_function``: not a module
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imports(path, name))
    if entry not in seen:
        raise PackagingError(f"handler module {entry} not found under {root}")
    return seen, third_party


def _source_entries(modules: set[str], root: Path) -> dict[str, bytes]:
    """Archive entries for the modules, plus data files (SQL, PEM, JSON) of their packages."""
    entries: dict[str, bytes] = {}
    for module in modules:
        path = _module_file(root, module)
        assert path is not None
        entries[path.relative_to(root.parent).as_posix()] = path.read_bytes()
        if path.name != "__init__.py":
            continue
        # Data of this package: non-Python files, and folders that are not packages.
        for child in sorted(path.parent.iterdir()):
            if child.is_file() and child.suffix not in {".py", ".pyc"}:
                entries[child.relative_to(root.parent).as_posix()] = child.read_bytes()
            elif (
                child.is_dir()
                and child.name not in _SKIP_DIRS
                and not (child / "__init__.py").exists()
            ):
                for data in sorted(child.rglob("*")):
                    if data.is_file() and not (_SKIP_DIRS & set(data.parts)):
                        entries[data.relative_to(root.parent).as_posix()] = data.read_bytes()
    return entries


def wheel_cache_dir(state: Path, runtime: str, arch: str) -> Path:
    return state / "wheels" / f"linux-{arch}-cp{RUNTIMES[runtime].replace('.', '')}"


def pip_download_command(
    project: str, version: str, runtime: str, arch: str, dest: Path
) -> list[str]:
    """``pip download`` of the one wheel for ``runtime``/``arch``, every accepted manylinux tag."""
    py = RUNTIMES[runtime]
    platforms = [arg for tag in PLATFORMS[arch] for arg in ("--platform", tag)]
    return [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", *platforms,
        "--python-version", py, "--implementation", "cp", "--abi", f"cp{py.replace('.', '')}",
        "--dest", str(dest), f"{project}=={version}",
    ]  # fmt: skip


def fetch_wheel(project: str, runtime: str, arch: str, cache: Path) -> Path:
    """The manylinux wheel of ``project`` (same version as installed here), cached on disk."""
    try:
        version = metadata.version(project)
    except metadata.PackageNotFoundError:
        raise PackagingError(
            f"{project} is not installed here: cannot tell which version to ship"
        ) from None
    dist = project.replace("-", "_")
    cached = sorted(cache.glob(f"{dist}-{version}-*.whl"))
    if cached:
        return cached[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = pip_download_command(project, version, runtime, arch, cache)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    cached = sorted(cache.glob(f"{dist}-{version}-*.whl"))
    if proc.returncode != 0 or not cached:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel found"]
        raise PackagingError(
            f"could not download {project}=={version} for {runtime}/{arch} from PyPI: {detail[0]}"
        )
    return cached[0]


# The files whose digest Terraform recomputes (terraform/main.tf, local.source_digest) to refuse
# zips built from other sources: fileset(src/hybridshop, "**/*.{py,sql}").
SOURCE_SUFFIXES = (".py", ".sql")


def source_digest(root: Path | None = None) -> str:
    """sha256 over ``<relative path>:<sha256 hex>`` lines of the package's .py and .sql files,
    sorted by path: the same value as Terraform's ``local.source_digest``."""
    root = root or _package_root()
    lines = sorted(
        f"{p.relative_to(root).as_posix()}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
        for p in root.rglob("*")
        if p.is_file() and p.suffix in SOURCE_SUFFIXES and not (_SKIP_DIRS & set(p.parts))
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _wheel_entries(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def build_lambda_zips(
    out_dir: Path,
    state: Path,
    runtime: str = "python3.12",
    arch: str = "x86_64",
    targets: list[LambdaTarget] | None = None,
) -> dict[str, dict[str, object]]:
    """Write ``<out_dir>/<name>.zip`` per target and ``manifest.json``; return the manifest's
    ``functions`` part (name -> handler, runtime, architecture, modules, wheels, digests)."""
    if runtime not in RUNTIMES:
        raise PackagingError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if arch not in PLATFORMS:
        raise PackagingError(f"arch must be one of {', '.join(PLATFORMS)}, got {arch!r}")
    root = _package_root()
    cache = wheel_cache_dir(state, runtime, arch)
    manifest: dict[str, dict[str, object]] = {}
    for target in targets or default_targets():
        modules, third_party = module_closure(target.module, root)
        unknown = third_party - set(BUNDLED) - RUNTIME_PROVIDED
        if unknown:
            raise PackagingError(
                f"{target.module} imports {', '.join(sorted(unknown))}, which the zip does not "
                "bundle; add it to packaging.lambda_zip.BUNDLED or drop the import"
            )
        entries = _source_entries(modules, root)
        wheels = []
        for top in sorted(third_party & set(BUNDLED)):
            wheel = fetch_wheel(BUNDLED[top], runtime, arch, cache)
            wheels.append(wheel.name)
            entries.update(_wheel_entries(wheel))
        path = out_dir / f"{target.name}.zip"
        write_zip(path, entries)
        manifest[target.name] = {
            "handler": f"{target.module}.handler",
            "runtime": runtime,
            "architecture": arch,
            "modules": sorted(modules),
            "wheels": wheels,
            **file_digests(path),
        }
    # "build" is what Terraform's preconditions compare with the tfvars and the checkout.
    document = {
        "build": {"runtime": runtime, "architecture": arch, "source_digest": source_digest(root)},
        "functions": manifest,
    }
    (out_dir / "manifest.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return manifest
