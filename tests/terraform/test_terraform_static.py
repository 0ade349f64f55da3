"""Offline checks of terraform/: parsing, references, variables, google schema, routes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hybridshop.lambda_functions import FUNCTIONS
from terraform.tfhcl import (
    ALL_DIRS,
    MODULES,
    REF,
    RESOURCE_REF,
    TF_ROOT,
    block_items,
    code_without_comments,
    load,
    unquote,
)

# A copy of the reference extracted from hashicorp/terraform-provider-google's docs (see its
# "source_commit"), kept in the repo so the check runs in a fresh clone.
SCHEMA_PATH = Path(__file__).with_name("google-provider-schema.json")
META_ARGS = {"count", "for_each", "depends_on", "lifecycle", "provider"}


@pytest.fixture(scope="module", params=ALL_DIRS, ids=lambda p: p.name)
def module(request: pytest.FixtureRequest) -> Any:
    return load(request.param)


def test_every_module_has_the_standard_files() -> None:
    for path in MODULES:
        assert {p.name for p in path.glob("*.tf")} == {
            "main.tf", "variables.tf", "outputs.tf", "versions.tf"
        }, path  # fmt: skip
    root = {p.name for p in TF_ROOT.glob("*.tf")}
    assert {"providers.tf", "versions.tf", "variables.tf", "main.tf", "outputs.tf"} <= root
    assert (TF_ROOT / "terraform.tfvars.example").is_file()


def test_variables_are_typed_and_described(module: Any) -> None:
    variables = module.labelled("variable")
    for name, body in variables.items():
        assert "type" in body, f"{module.path.name}: variable {name} has no type"
        assert unquote(body.get("description", "")).strip(), (
            f"{module.path.name}: {name} undescribed"
        )
    for name, body in module.labelled("output").items():
        assert unquote(body.get("description", "")).strip(), f"{module.path.name}: output {name}"


def test_references_resolve(module: Any) -> None:
    code = code_without_comments(module.text)
    variables = set(module.labelled("variable"))
    locals_ = module.locals()
    calls = module.labelled("module")
    resources = module.resources()
    data = module.resources("data")
    problems = []
    for kind, name, attr in REF.findall(code):
        if kind == "var" and name not in variables:
            problems.append(f"var.{name}")
        elif kind == "local" and name not in locals_:
            problems.append(f"local.{name}")
        elif kind == "module":
            if name not in calls:
                problems.append(f"module.{name}")
                continue
            child = load((module.path / unquote(calls[name]["source"])).resolve())
            if attr and attr not in child.labelled("output"):
                problems.append(f"module.{name}.{attr} (no such output)")
        elif kind == "data" and (name, attr) not in data:
            problems.append(f"data.{name}.{attr}")
    for rtype, name in RESOURCE_REF.findall(code):
        if (rtype, name) not in resources:
            problems.append(f"{rtype}.{name}")
    assert not problems, f"{module.path.name}: unresolved references {sorted(set(problems))}"


def test_module_calls_match_child_variables() -> None:
    root = load(TF_ROOT)
    for name, body in root.labelled("module").items():
        child = load((TF_ROOT / unquote(body["source"])).resolve())
        variables = child.labelled("variable")
        given = {k for k in body if not k.startswith("__") and k not in {"source"} | META_ARGS}
        unknown = given - set(variables)
        required = {v for v, spec in variables.items() if "default" not in spec}
        assert not unknown, f"module {name}: unknown arguments {unknown}"
        assert not required - given, f"module {name}: missing required {required - given}"


def test_tfvars_example_covers_required_variables() -> None:
    root = load(TF_ROOT)
    required = {n for n, spec in root.labelled("variable").items() if "default" not in spec}
    example = (TF_ROOT / "terraform.tfvars.example").read_text()
    assigned = set(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", example, re.M))
    assert required, "the root must have required variables (project, image)"
    assert required <= assigned, f"tfvars example misses {required - assigned}"
    assert assigned <= set(root.labelled("variable")), (
        f"unknown in example: {assigned - set(root.labelled('variable'))}"
    )


def test_routes_match_the_function_registry() -> None:
    root = load(TF_ROOT)
    local = next(
        e["api_functions"]
        for f in root.files.values()
        for e in f.get("locals", [])
        if "api_functions" in e
    )
    assert isinstance(local, dict)
    declared = {
        name: {
            "handler": unquote(spec["handler"]),
            "routes": sorted(unquote(r) for r in spec["routes"]),
            "timeout": spec["timeout_s"],
            "memory": spec["memory_mb"],
        }
        for name, spec in local.items()
        if name != "__is_block__"
    }
    expected = {
        f.name: {
            "handler": f.handler,
            "routes": sorted(f.routes),
            "timeout": f.timeout_s,
            "memory": f.memory_mb,
        }
        for f in FUNCTIONS
    }
    assert declared == expected


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _check_body(
    where: str, body: dict[str, Any], schema: dict[str, Any], problems: list[str]
) -> None:
    args, blocks = block_items(body)
    known_args = schema.get("arguments", {})
    known_blocks = schema.get("blocks", {})
    for arg in args:
        if arg in META_ARGS:
            continue
        spec = known_args.get(arg)
        if spec is None:
            problems.append(f"{where}: unknown argument {arg!r}")
        elif spec.get("output_only") or spec.get("beta"):
            problems.append(
                f"{where}: {arg!r} is {'output-only' if spec.get('output_only') else 'beta'}"
            )
    for name, spec in known_args.items():
        if spec.get("required") and name not in args:
            problems.append(f"{where}: missing required argument {name!r}")
    for name, items in blocks.items():
        if name in {"lifecycle", "timeouts"} and name not in known_blocks:
            continue
        spec = known_blocks.get(name)
        if spec is None:
            problems.append(f"{where}: unknown block {name!r}")
            continue
        if spec.get("output_only") or spec.get("beta"):
            problems.append(f"{where}: block {name!r} is output-only or beta")
        for item in items:
            _check_body(f"{where}.{name}", item, spec, problems)
    for name, spec in known_blocks.items():
        if spec.get("required") and name not in blocks:
            problems.append(f"{where}: missing required block {name!r}")


def test_google_resources_match_the_provider_schema() -> None:
    schema = _schema()
    problems: list[str] = []
    checked = 0
    for path in ALL_DIRS:
        module = load(path)
        for kind, section in (("resource", "resources"), ("data", "data_sources")):
            for (rtype, name), body in module.resources(kind).items():
                if not rtype.startswith("google_"):
                    continue
                spec = schema[section].get(rtype)
                if spec is None:
                    problems.append(f"{path.name}: {rtype} not in the schema reference")
                    continue
                _check_body(f"{path.name}/{rtype}.{name}", body, spec, problems)
                checked += 1
    assert checked >= 15, "expected the google resources of web, analytics and vpn"
    assert not problems, "\n".join(problems)


def test_schema_check_catches_a_misspelt_argument() -> None:
    """The checker itself must fail on a wrong name, or the test above proves nothing."""
    schema = _schema()["resources"]["google_datastream_stream"]
    problems: list[str] = []
    body = {
        "stream_id": '"s"',
        "display_name": '"d"',
        "location": '"l"',
        "desird_state": '"RUNNING"',
    }
    _check_body("probe", body, schema, problems)
    assert any("desird_state" in p for p in problems)
    assert any("source_config" in p for p in problems)  # required block missing
