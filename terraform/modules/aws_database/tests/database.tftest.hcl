# terraform test (mocked AWS provider, offline): run from terraform/modules/aws_database with
# `terraform init -backend=false && terraform test` (tests/terraform/test_terraform_test.py
# does it in CI).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/shop-test-rds-monitoring" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/0000-test" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:shop-test-alarms" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:test" }
  }
  mock_resource "aws_db_instance" {
    defaults = {
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds-master", kms_key_id = "k", secret_status = "active" }]
    }
  }
}

variables {
  name                      = "shop-test"
  vpc_id                    = "vpc-0123456789abcdef0"
  subnet_ids                = ["subnet-0a", "subnet-0b"]
  publicly_accessible       = true
  client_security_group_ids = ["sg-0123456789abcdef0"]
  allowed_cidrs             = ["203.0.113.10/32", "203.0.113.11/32"]
  alarm_email               = "ops@example.com"
}

# D4: a one-shot apply plans although Datastream's IP list is unknown (count = length(list)
# failed here with "Invalid count argument").
run "unknown_allowlist_plans" {
  command = plan

  module {
    source = "./tests/unknown_cidrs"
  }
}

run "allowlist_is_one_rule_on_a_prefix_list" {
  command = apply

  assert {
    condition     = length(aws_ec2_managed_prefix_list.datastream.entry) == 2
    error_message = "Every Datastream range must be an entry of the prefix list."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.from_cidrs.prefix_list_id == aws_ec2_managed_prefix_list.datastream.id && aws_vpc_security_group_ingress_rule.from_cidrs.cidr_ipv4 == null
    error_message = "The Datastream ingress must reference the prefix list, not a CIDR."
  }
}

# D1: CloudWatch alarms can publish only to a topic whose key policy lets CloudWatch use it.
run "alarm_topic_key_lets_cloudwatch_publish" {
  command = apply

  assert {
    condition     = aws_sns_topic.alarms[0].kms_master_key_id == aws_kms_key.alarms[0].arn
    error_message = "The alarm topic must use the customer key (alias/aws/sns refuses CloudWatch)."
  }
  assert {
    condition = contains(flatten([
      for s in data.aws_iam_policy_document.alarms_key.statement : [
        for p in s.principals : p.identifiers if contains(s.actions, "kms:GenerateDataKey*")
      ]
    ]), "cloudwatch.amazonaws.com")
    error_message = "The key policy must let cloudwatch.amazonaws.com generate data keys."
  }
  assert {
    condition     = aws_kms_key.alarms[0].enable_key_rotation
    error_message = "Rotate the alarm key."
  }
}

# D2: the exported PostgreSQL log (DDL statements) goes to groups we own, with a retention.
run "rds_log_groups_have_a_retention" {
  command = apply

  variables {
    log_retention_days = 30
  }

  assert {
    condition     = toset([for g in aws_cloudwatch_log_group.exports : g.name]) == toset(["/aws/rds/instance/shop-test/postgresql", "/aws/rds/instance/shop-test/upgrade"])
    error_message = "Each exported RDS log needs its log group, named as RDS names it."
  }
  assert {
    condition     = alltrue([for g in aws_cloudwatch_log_group.exports : g.retention_in_days == 30])
    error_message = "RDS log groups must expire."
  }
  assert {
    condition     = toset(aws_db_instance.this.enabled_cloudwatch_logs_exports) == toset(keys(aws_cloudwatch_log_group.exports))
    error_message = "Exports and managed log groups must be the same list."
  }
}

# D16: two environments in one account: every name from var.name, a unique final snapshot.
run "names_follow_var_name" {
  command   = apply
  state_key = "second_environment"

  variables {
    name = "shop-staging"
  }

  assert {
    condition     = aws_db_instance.this.identifier == "shop-staging" && aws_db_subnet_group.this.name == "shop-staging"
    error_message = "Instance and subnet group are named after var.name."
  }
  assert {
    condition     = startswith(aws_db_instance.this.final_snapshot_identifier, "shop-staging-final-") && length(aws_db_instance.this.final_snapshot_identifier) == length("shop-staging-final-") + 14
    error_message = "The final snapshot name must be unique (name + creation time)."
  }
}

run "rds_refuses_double_hyphens" {
  command = plan

  variables {
    name = "shop--test"
  }

  expect_failures = [var.name]
}

run "rds_refuses_a_trailing_hyphen" {
  command = plan

  variables {
    name = "shop-"
  }

  expect_failures = [var.name]
}
