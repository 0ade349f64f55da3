"""Our own security checks, for what checkov does not see (reference: terraform.md) and for what
the origin project got wrong: 5432 open to the world, Cloud Run for allUsers, secrets in plain
environment variables and outputs, unscoped Lambda permissions, IAM auth on the wrong ARN."""

from __future__ import annotations

import re
from typing import Any

from terraform.tfhcl import ALL_DIRS, TF_ROOT, block_items, code_without_comments, load, unquote

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|(^|_)KEY($|_)", re.I)
SECRET_VALUE = re.compile(
    r"password|secret_string|secret_data|preshared_key|random_password|private_key", re.I
)
WORLD = {"0.0.0.0/0", "::/0"}


def _all_resources(kind: str = "resource") -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for path in ALL_DIRS:
        for (rtype, name), body in load(path).resources(kind).items():
            out.append((path.name, rtype, name, body))
    return out


def _covers_5432(args: dict[str, Any]) -> bool:
    if unquote(str(args.get("ip_protocol", args.get("protocol", "")))) in {"-1", "all"}:
        return True
    try:
        return int(args.get("from_port", -1)) <= 5432 <= int(args.get("to_port", -1))
    except (TypeError, ValueError):
        return True  # a computed port range: treat as covering 5432


def test_postgres_port_is_never_open_to_the_world() -> None:
    rules = 0
    for module, rtype, name, body in _all_resources():
        candidates: list[dict[str, Any]] = []
        if rtype == "aws_vpc_security_group_ingress_rule":
            candidates.append(body)
        elif rtype == "aws_security_group":
            candidates.extend(block_items(body)[1].get("ingress", []))
        elif rtype == "aws_security_group_rule" and unquote(body.get("type", "")) == "ingress":
            candidates.append(body)
        for rule in candidates:
            if not _covers_5432(rule):
                continue
            rules += 1
            cidrs = " ".join(
                str(rule.get(k, "")) for k in ("cidr_ipv4", "cidr_ipv6", "cidr_blocks")
            )
            assert not any(w in cidrs for w in WORLD), (
                f"{module}: {rtype}.{name} opens 5432 to the world"
            )
            if "var." in cidrs:
                # The CIDRs come from a variable: its validation must refuse the world.
                variables = load(TF_ROOT / "modules" / module).labelled("variable")
                var_name = re.search(r"var\.(\w+)", cidrs).group(1)  # type: ignore[union-attr]
                validation = str(variables[var_name].get("validation", ""))
                assert "0.0.0.0/0" in validation, f"{module}: var.{var_name} may be 0.0.0.0/0"
    assert rules >= 2, "expected the Lambda and Datastream ingress rules on 5432"
    # What the root feeds in: Datastream's published IPs as /32s, or the private /29.
    database = load(TF_ROOT).labelled("module")["database"]
    assert (
        "/32" in database["allowed_cidrs"] and "datastream_static_ips" in database["allowed_cidrs"]
    )


def test_world_cidr_appears_only_in_harmless_places() -> None:
    allowed = 0
    for module, rtype, name, body in _all_resources():
        text = str(body)
        if not any(w in text for w in WORLD):
            continue
        if rtype == "aws_route" or (
            rtype == "google_compute_firewall" and "deny" in block_items(body)[1]
        ):
            allowed += 1
            continue
        raise AssertionError(f"{module}: {rtype}.{name} mentions a world-open CIDR")
    assert allowed >= 1


def test_cloud_run_is_public_only_through_the_variable() -> None:
    found = False
    for module, rtype, name, body in _all_resources():
        if not (rtype.startswith("google_cloud_run") and "iam" in rtype):
            continue
        members = str(body.get("member", "")) + str(body.get("members", ""))
        if "allUsers" in members or "allAuthenticatedUsers" in members:
            found = True
            assert re.fullmatch(r"\$\{var\.public \? 1 : 0\}", str(body.get("count", ""))), (
                f"{module}: {rtype}.{name} grants the world without the public switch"
            )
    assert found, "the optional public binding is expected in gcp_web"
    root_vars = load(TF_ROOT).labelled("variable")
    assert root_vars["shop_public"]["default"] is False
    assert load(TF_ROOT).labelled("module")["web"]["public"] == "${var.shop_public}"
    web_vars = load(TF_ROOT / "modules" / "gcp_web").labelled("variable")
    assert web_vars["public"]["default"] is False


def test_no_secret_in_plain_environment_variables() -> None:
    lambdas = 0
    for module, rtype, _name, body in _all_resources():
        if rtype == "aws_lambda_function":
            lambdas += 1
            env = block_items(body)[1]["environment"][0]
            variables = env["variables"]
            for key, value in variables.items():
                if key.startswith("__"):
                    continue
                assert not (SECRET_NAME.search(key) and not key.endswith("_ARN")), (
                    f"{module}: {key}"
                )
                assert not SECRET_VALUE.search(str(value)), f"{module}: {key} = {value}"
        if rtype == "google_cloud_run_v2_service":
            template = block_items(body)[1]["template"][0]
            for container in block_items(template)[1]["containers"]:
                for env in block_items(container)[1].get("env", []):
                    key = unquote(env["name"])
                    if SECRET_NAME.search(key):
                        assert "value" not in env, f"{key} must come from Secret Manager"
                        assert "value_source" in block_items(env)[1]
                    else:
                        assert not SECRET_VALUE.search(str(env.get("value", ""))), key
    assert lambdas == 2  # the API for_each and the bootstrap


def test_outputs_with_secrets_are_sensitive() -> None:
    for path in ALL_DIRS:
        for name, body in load(path).labelled("output").items():
            value = str(body.get("value", ""))
            if SECRET_VALUE.search(value) or "tunnels" in value:
                assert body.get("sensitive") is True, f"{path.name}: output {name} leaks a secret"
    root_outputs = str(load(TF_ROOT).labelled("output"))
    assert "datastream_password" not in root_outputs


def test_every_lambda_permission_is_scoped_by_source_arn() -> None:
    permissions = [b for _, t, _, b in _all_resources() if t == "aws_lambda_permission"]
    assert permissions
    for body in permissions:
        source = str(body.get("source_arn", ""))
        assert "execution_arn" in source, "API Gateway permission without the API's source ARN"
        assert not source.endswith("}/*") or source.count("/") > 1


def test_rds_settings() -> None:
    module = load(TF_ROOT / "modules" / "aws_database")
    db = module.resources()[("aws_db_instance", "this")]
    assert db["iam_database_authentication_enabled"] is True
    assert db["manage_master_user_password"] is True and "password" not in db
    assert db["storage_encrypted"] is True
    assert db["backup_retention_period"] == "${var.backup_retention_days}"
    assert ">= 1" in str(module.labelled("variable")["backup_retention_days"]["validation"])
    params = {
        unquote(p["name"]): (
            unquote(str(p["value"])),
            unquote(p.get("apply_method", '"immediate"')),
        )
        for p in block_items(module.resources()[("aws_db_parameter_group", "this")])[1]["parameter"]
    }
    assert params["rds.logical_replication"] == ("1", "pending-reboot")
    assert params["rds.force_ssl"][0] == "1"
    assert "max_slot_wal_keep_size" in params


def test_rds_iam_policy_uses_the_resource_id_and_one_user() -> None:
    api = load(TF_ROOT / "modules" / "aws_api")
    code = code_without_comments(api.text)
    assert re.search(r"dbuser:\$\{var\.db_resource_id\}/\$\{var\.db_user\}", code)
    root = load(TF_ROOT).labelled("module")["api"]
    assert root["db_resource_id"] == "${module.database.resource_id}"
    assert "rds-db:*" not in code and '"rds-db:connect"' in code


def test_every_route_requires_the_jwt_authorizer() -> None:
    route = load(TF_ROOT / "modules" / "aws_api").resources()[("aws_apigatewayv2_route", "this")]
    assert unquote(route["authorization_type"]) == "JWT"
    assert "aws_apigatewayv2_authorizer.google.id" in route["authorizer_id"]
    authorizer = load(TF_ROOT / "modules" / "aws_api").resources()[
        ("aws_apigatewayv2_authorizer", "google")
    ]
    jwt = block_items(authorizer)[1]["jwt_configuration"][0]
    assert "var.jwt_issuer" in jwt["issuer"]
    variables = load(TF_ROOT / "modules" / "aws_api").labelled("variable")
    assert unquote(variables["jwt_issuer"]["default"]) == "https://accounts.google.com"
    # ... and the functions check the caller too (any Google identity can mint a token).
    root = load(TF_ROOT).labelled("module")["api"]
    assert "service_account_email" in str(root["allowed_callers"])
    assert "service_account_unique_id" in str(root["allowed_callers"])
