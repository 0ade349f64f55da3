# terraform test (mocked AWS provider, offline). The fixtures are a tiny zip and the manifest
# `hybridshop package` would write for it (python3.12 / arm64, source digest "test-sources").

mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_secretsmanager_random_password" {
    defaults = { random_password = "generated-password-0123456789abcdefghij" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/shop-test-bootstrap" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ds" }
  }
  mock_resource "aws_lambda_invocation" {
    defaults = {
      result = "{\"app_user\":\"hybridshop_app\",\"datastream_user\":\"hybridshop_datastream\",\"publication\":\"hybridshop_pub\",\"replication_slot\":\"hybridshop_slot\",\"replication_slot_status\":\"reserved\"}"
    }
  }
  mock_data "aws_lambda_invocation" {
    defaults = { result = "{\"server_address\":\"10.40.1.23\"}" }
  }
}

variables {
  name                = "shop-test"
  zip_path            = "./tests/fixtures/Bootstrap.zip"
  manifest_path       = "./tests/fixtures/manifest.json"
  source_digest       = "test-sources"
  runtime             = "python3.12"
  architecture        = "arm64"
  subnet_ids          = ["subnet-0a", "subnet-0b"]
  security_group_ids  = ["sg-0a"]
  db_host             = "shop-test.abc.eu-west-1.rds.amazonaws.com"
  db_port             = 5432
  db_name             = "hybridshop"
  master_secret_arn   = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds-master"
  migrations_hash     = "m1"
  db_resource_id      = "db-FIRSTINSTANCE"
  db_ingress_rule_ids = ["sgr-0a"]
}

run "matching_build_applies" {
  command = apply

  # D10: a replaced database (new resource id) and the ingress rule are part of the triggers.
  assert {
    condition     = aws_lambda_invocation.bootstrap.triggers["database"] == "db-FIRSTINSTANCE"
    error_message = "The DB resource id must be a trigger of the bootstrap."
  }
  assert {
    condition     = aws_lambda_invocation.bootstrap.triggers["ingress"] == "sgr-0a"
    error_message = "The bootstrap must wait for (and follow) the ingress rule."
  }
  assert {
    condition     = jsondecode(aws_lambda_invocation.bootstrap.input)["repair_lost_slot"] == false
    error_message = "Slot repair is off unless asked for."
  }
  assert {
    condition     = output.server_address == null
    error_message = "No check invocation unless report_server_address."
  }
}

run "replaced_database_reruns_the_bootstrap" {
  command = plan

  variables {
    db_resource_id = "db-SECONDINSTANCE"
  }

  assert {
    condition     = aws_lambda_invocation.bootstrap.triggers["database"] == "db-SECONDINSTANCE"
    error_message = "A new instance must change the triggers (and so re-run the bootstrap)."
  }
}

# D9: runtime or architecture of the tfvars differs from what was built.
run "runtime_mismatch_fails_the_plan" {
  command = plan

  variables {
    runtime = "python3.13"
  }

  expect_failures = [aws_lambda_function.bootstrap]
}

run "architecture_mismatch_fails_the_plan" {
  command = plan

  variables {
    architecture = "x86_64"
  }

  expect_failures = [aws_lambda_function.bootstrap]
}

# D8: missing zip, or zips built from other sources.
run "missing_zip_fails_the_plan" {
  command = plan

  variables {
    zip_path = "./tests/fixtures/NotBuilt.zip"
  }

  expect_failures = [aws_lambda_function.bootstrap]
}

run "stale_build_fails_the_plan" {
  command = plan

  variables {
    source_digest = "sources-changed-since-the-build"
  }

  expect_failures = [aws_lambda_function.bootstrap]
}

# db_password of the seed README becomes the Datastream user's password.
run "given_password_is_stored" {
  command = apply

  variables {
    datastream_password = "operator-chosen-password-123"
  }

  assert {
    condition     = length(aws_secretsmanager_secret_version.datastream) == 0 && aws_secretsmanager_secret_version.datastream_given[0].secret_string == "operator-chosen-password-123"
    error_message = "A given password replaces the generated one."
  }
}

run "short_password_is_refused" {
  command = plan

  variables {
    datastream_password = "short"
  }

  expect_failures = [var.datastream_password]
}

# D13: private connectivity reads the instance's current address on every plan.
run "server_address_is_read_when_asked" {
  command = apply

  variables {
    report_server_address = true
  }

  assert {
    condition     = output.server_address == "10.40.1.23"
    error_message = "The check invocation's server_address must be the output."
  }
}
