"""Our own rules for the deploy path (issue 13): what no provider schema or checkov sees. Each
names the review item it guards. Where terraform itself can evaluate an expression offline
(`terraform console`, no provider), it does, so the rule checks Terraform's behaviour and not
our reading of it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hybridshop.packaging.lambda_zip import source_digest
from terraform.tfcli import TERRAFORM
from terraform.tfhcl import ALL_DIRS, REPO, TF_ROOT, block_items, code_without_comments, load, unquote

MODULES = TF_ROOT / "modules"
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")


def _text(*parts: str) -> str:
    return code_without_comments((TF_ROOT.joinpath(*parts)).read_text())


def _console(expression: str, locals_block: str, tmp_path: Path) -> str:
    (tmp_path / "main.tf").write_text(locals_block)
    proc = subprocess.run(
        [TERRAFORM or "terraform", "console"],
        input=expression + "\n", cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "HOME": str(tmp_path)},
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@needs_terraform
def test_terraform_computes_the_same_source_digest_as_package(tmp_path: Path) -> None:
    """D8: the stale-build precondition compares these two; if they differed every plan would
    fail (or, worse, none would)."""
    expression = re.search(r"source_digest\s*=\s*(sha256\(.*\))\n", _text("main.tf"))
    assert expression, "local.source_digest not found in terraform/main.tf"
    block = (
        "locals {\n"
        f'  package_dir = "{REPO / "src" / "hybridshop"}"\n'
        f"  source_digest = {expression.group(1)}\n}}\n"
    )
    assert _console("local.source_digest", block, tmp_path).strip('"') == source_digest()


@needs_terraform
def test_view_table_references_are_found_by_terraform(tmp_path: Path) -> None:
    """Views wait for exactly the Datastream tables their SQL reads."""
    main = (MODULES / "gcp_analytics" / "main.tf").read_text()
    pattern = re.search(r'regexall\("((?:[^"\\]|\\.)*)", sql\)', main)
    assert pattern, "the view/table regex is not in gcp_analytics"
    sql = "SELECT * FROM `p.d.public_orders` o JOIN `p.d.public_products` p ON TRUE JOIN `p.d.daily_revenue` r ON TRUE"
    block = f"locals {{\n  sql = {sql!r}\n}}\n".replace("'", '"')
    out = _console(f'[for m in regexall("{pattern.group(1)}", local.sql) : m[0]]', block, tmp_path)
    assert re.findall(r'"([a-z_]+)"', out) == ["public_orders", "public_products", "daily_revenue"]


def test_views_come_from_the_analytics_folder() -> None:
    """Every analytics/bigquery/*.sql becomes a view (fileset + templatefile), reading the
    replicated tables only through `${project}.${dataset}.<table>`."""
    main = _text("modules", "gcp_analytics", "main.tf")
    assert 'fileset(var.views_dir, "*.sql")' in main and "templatefile(" in main
    assert 'views_dir        = "${path.root}/../analytics/bigquery"' in _text("main.tf")
    files = sorted((REPO / "analytics" / "bigquery").glob("*.sql"))
    assert files, "at least one view file"
    for sql in files:
        text = sql.read_text()
        assert re.fullmatch(r"[a-z][a-z0-9_]*", sql.stem), sql.name
        refs = re.findall(r"`([^`]+)`", text)
        assert refs and all(re.fullmatch(r"\$\{project\}\.\$\{dataset\}\.\w+", r) for r in refs), sql
    # never a view whose tables may not exist: the query is a placeholder until they do
    view = load(MODULES / "gcp_analytics").resources()[("google_bigquery_table", "view")]
    assert "local.views_ready[each.key]" in str(view)


def test_alarm_topic_is_not_on_the_aws_managed_sns_key() -> None:
    """D1."""
    for path in ALL_DIRS:
        assert "alias/aws/sns" not in code_without_comments(load(path).text), path.name


def test_datastream_gets_one_regional_root_not_the_global_bundle() -> None:
    """D5."""
    root = _text("main.tf")
    assert "global-bundle" not in root and "rds-global-bundle" not in root
    assert "rds-ca/${var.aws_region}/${var.db_ca_cert_identifier}.pem" in root
    assert "ca_cert_identifier = var.db_ca_cert_identifier" in root


def test_image_build_has_its_own_service_account_with_only_its_roles() -> None:
    """D6: no reliance on the Compute Engine default account."""
    registry = load(MODULES / "gcp_registry").resources()
    assert ("google_service_account", "build") in registry
    roles = {
        unquote(body["role"])
        for (rtype, _), body in registry.items()
        if rtype.endswith("_iam_member")
    }
    assert roles == {"roles/artifactregistry.writer", "roles/logging.logWriter", "roles/storage.objectViewer"}
    deploy = (REPO / "src" / "hybridshop" / "cli" / "deploy.py").read_text()
    assert '"--service-account"' in deploy and "build_service_account" in deploy


def test_one_time_gcp_setup_and_quota_project() -> None:
    """D7."""
    providers = _text("providers.tf")
    assert "user_project_override = true" in providers and "billing_project" in providers
    main = _text("main.tf")
    for api in ("cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com"):
        assert f'"{api}"' in main
    guide = (REPO / "docs" / "deploy.md").read_text()
    for needed in ("gcloud services enable cloudresourcemanager.googleapis.com", "roles/run.admin", "sns:", "ec2:CreateVpnConnection", "set-quota-project"):
        assert needed in guide, needed


def test_bootstrap_reruns_for_a_new_database_after_the_ingress_rule() -> None:
    """D10 (the terraform test suite checks the triggers' values)."""
    root = load(TF_ROOT).labelled("module")["bootstrap"]
    assert root["db_resource_id"] == "${module.database.resource_id}"
    assert root["db_ingress_rule_ids"] == "${module.database.client_ingress_rule_ids}"


def test_datastream_waits_for_the_vpn_and_uses_the_live_private_ip() -> None:
    """D13."""
    analytics = load(TF_ROOT).labelled("module")["analytics"]
    depends = str(analytics["depends_on"])
    assert "module.gcp_vpn" in depends and "module.aws_vpn" in depends
    assert "module.bootstrap.server_address" in str(analytics["db_host"])
    assert "aws_network_interface" not in _text("modules", "aws_database", "main.tf")


def test_allowlist_risk_is_stated() -> None:
    """D15."""
    description = unquote(load(TF_ROOT).labelled("variable")["datastream_connectivity"]["description"])
    assert "shared" in description or "every Datastream customer" in description
    assert "private_vpn for production" in description
    assert "private_vpn" in (REPO / "docs" / "deploy.md").read_text()


def _probe_paths(body: dict[str, Any]) -> dict[str, str]:
    _, blocks = block_items(body)
    template = blocks["template"][0]
    _, tblocks = block_items(template)
    _, cblocks = block_items(tblocks["containers"][0])
    paths = {}
    for probe in ("startup_probe", "liveness_probe"):
        _, pblocks = block_items(cblocks[probe][0])
        paths[probe] = unquote(pblocks["http_get"][0]["path"])
    return paths


def test_probes_use_http_health_not_a_path_ending_in_z() -> None:
    """D11: Cloud Run's front end reserves paths ending in z."""
    from flask import Flask

    from hybridshop.web.views.health import bp

    service = load(MODULES / "gcp_web").resources()[("google_cloud_run_v2_service", "shop")]
    paths = _probe_paths(service)
    assert paths == {"startup_probe": "/health", "liveness_probe": "/health"}
    app = Flask(__name__)
    app.register_blueprint(bp)
    routes = {r.rule for r in app.url_map.iter_rules()}
    assert {"/health", "/ready"} <= routes
    assert not [r for r in routes if r.endswith("z")]


def test_cloud_run_concurrency_is_gunicorns_thread_count() -> None:
    """D12: one setting."""
    web = _text("modules", "gcp_web", "main.tf")
    assert "max_instance_request_concurrency = var.concurrency" in web
    assert re.search(r'name\s*=\s*"WEB_THREADS"\s*\n\s*value\s*=\s*tostring\(var.concurrency\)', web)
    dockerfile = (REPO / "app" / "flask-app" / "Dockerfile").read_text()
    assert '--threads \\"${WEB_THREADS:-8}\\"' in dockerfile
    assert "concurrency     = var.shop_concurrency" in _text("main.tf")


def test_names_follow_var_name() -> None:
    """D16: two environments fit in one account/project."""
    for module in ("gcp_analytics", "gcp_registry", "gcp_web", "gcp_vpn"):
        for (rtype, name), body in load(MODULES / module).resources().items():
            for key in ("connection_profile_id", "stream_id", "private_connection_id", "account_id", "name", "secret_id"):
                value = str(body.get(key, ""))
                assert "hybridshop" not in value, f"{module} {rtype}.{name}.{key} = {value}"
    root = load(TF_ROOT).labelled("module")
    assert root["analytics"]["name"] == "${var.name}" and root["registry"]["name"] == "${var.name}"


def test_bigquery_location_is_derived_from_the_region() -> None:
    """D16."""
    variables = load(TF_ROOT).labelled("variable")
    assert "default" in variables["bigquery_location"] and variables["bigquery_location"]["default"] is None
    assert "coalesce(var.bigquery_location, var.gcp_region)" in _text("main.tf")


def test_db_password_is_declared_and_explained() -> None:
    """The seed README's db_password: declared, sensitive, and its use said on every plan."""
    variable = load(TF_ROOT).labelled("variable")["db_password"]
    assert variable["sensitive"] is True
    assert "master password" in unquote(variable["description"])
    assert 'check "db_password_use"' in _text("main.tf")
    assert load(TF_ROOT).labelled("module")["bootstrap"]["datastream_password"] == "${var.db_password}"


def test_provider_lock_file_is_committed() -> None:
    lock = TF_ROOT / ".terraform.lock.hcl"
    assert lock.is_file(), "commit terraform/.terraform.lock.hcl (terraform providers lock)"
    text = lock.read_text()
    # aws is pinned with the linux_amd64 h1 computed here from the mirror and the registry's
    # zh checksums of every platform; google/random are added by the first online init.
    assert 'provider "registry.terraform.io/hashicorp/aws"' in text
    assert 'version     = "5.100.0"' in text and text.count('"zh:') >= 10
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(lock)], cwd=REPO, capture_output=True, check=False
    )
    assert tracked.returncode == 0, "the lock file must be tracked by git (.gitignore hid it)"


@needs_terraform
def test_every_view_file_renders_with_templatefile(tmp_path: Path) -> None:
    """What gcp_analytics does with each file: a stray `${` or `%{` in a view's SQL would fail
    the plan; every reference must become `p.d.<table>`."""
    views = REPO / "analytics" / "bigquery"
    block = f'locals {{\n  dir = "{views}"\n}}\n'
    expression = (
        'jsonencode({for f in fileset(local.dir, "*.sql") : f => '
        'templatefile("${local.dir}/${f}", { project = "p", dataset = "d" })})'
    )
    out = _console(expression, block, tmp_path)
    rendered = json.loads(json.loads(out))
    assert set(rendered) == {p.name for p in views.glob("*.sql")}
    for name, sql in rendered.items():
        assert "${" not in sql and re.findall(r"`p\.d\.\w+`", sql), name
