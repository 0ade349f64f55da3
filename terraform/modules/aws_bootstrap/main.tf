# Zero manual steps: a Lambda inside the VPC applies the migrations and creates the IAM app
# user, the Datastream user, the publication and the slot. Terraform invokes it on create and
# whenever the migrations or the bootstrap settings change. Every step is idempotent.

data "aws_partition" "current" {}

# Datastream cannot use IAM auth: its user needs a password. Generated once by AWS, kept in
# Secrets Manager; the bootstrap sets it on the role, the Datastream profile reads it from here.
data "aws_secretsmanager_random_password" "datastream" {
  password_length     = 40
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "datastream" {
  name_prefix             = "${var.name}-datastream-"
  description             = "Password of the PostgreSQL user Datastream replicates with"
  recovery_window_in_days = var.secret_recovery_window_days
}

# Either generated once (default) or the operator's db_password, which then follows the
# variable: changing it stores a new version, the bootstrap re-runs and sets it on the role.
locals {
  password_generated = nonsensitive(var.datastream_password == null)
}

resource "aws_secretsmanager_secret_version" "datastream" {
  count         = local.password_generated ? 1 : 0
  secret_id     = aws_secretsmanager_secret.datastream.id
  secret_string = data.aws_secretsmanager_random_password.datastream.random_password

  # The data source returns a new password on every plan: keep the first one.
  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_secretsmanager_secret_version" "datastream_given" {
  count         = local.password_generated ? 0 : 1
  secret_id     = aws_secretsmanager_secret.datastream.id
  secret_string = var.datastream_password
}

locals {
  password_version = one(concat(
    aws_secretsmanager_secret_version.datastream[*], aws_secretsmanager_secret_version.datastream_given[*]
  ))
  # What `hybridshop package` recorded (build/lambda/manifest.json), for the preconditions below.
  manifest = try(jsondecode(file(var.manifest_path)), null)
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "bootstrap" {
  name               = "${var.name}-bootstrap"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

resource "aws_iam_role_policy_attachment" "vpc_access" {
  role       = aws_iam_role.bootstrap.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  role       = aws_iam_role.bootstrap.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# Read exactly the two secrets it needs; nothing else.
data "aws_iam_policy_document" "secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.master_secret_arn, aws_secretsmanager_secret.datastream.arn]
  }
}

resource "aws_iam_role_policy" "secrets" {
  name   = "read-bootstrap-secrets"
  role   = aws_iam_role.bootstrap.id
  policy = data.aws_iam_policy_document.secrets.json
}

resource "aws_cloudwatch_log_group" "bootstrap" {
  name              = "/aws/lambda/${var.name}-bootstrap"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "bootstrap" {
  function_name    = "${var.name}-bootstrap"
  description      = "Database bootstrap: migrations, IAM app user, Datastream user, publication, slot"
  role             = aws_iam_role.bootstrap.arn
  handler          = var.handler
  runtime          = var.runtime
  architectures    = [var.architecture]
  filename         = var.zip_path
  source_code_hash = fileexists(var.zip_path) ? filebase64sha256(var.zip_path) : null
  timeout          = 300
  memory_size      = 256

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  environment {
    variables = {
      DB_HOST               = var.db_host
      DB_PORT               = tostring(var.db_port)
      DB_NAME               = var.db_name
      MASTER_SECRET_ARN     = var.master_secret_arn
      DATASTREAM_SECRET_ARN = aws_secretsmanager_secret.datastream.arn
      APP_DB_USER           = var.app_db_user
      DATASTREAM_DB_USER    = var.datastream_db_user
      PUBLICATION           = var.publication
      REPLICATION_SLOT      = var.replication_slot
      LOG_LEVEL             = "INFO"
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.bootstrap.name
  }

  tracing_config {
    mode = "Active"
  }

  lifecycle {
    precondition {
      condition     = fileexists(var.zip_path)
      error_message = "${var.zip_path} is missing: run `hybridshop package` (or `hybridshop deploy`) first."
    }
    precondition {
      condition     = local.manifest != null
      error_message = "${var.manifest_path} is missing or unreadable: run `hybridshop package`."
    }
    precondition {
      condition     = try(local.manifest.build.runtime == var.runtime && local.manifest.build.architecture == var.architecture, false)
      error_message = "The zips were built for ${try(local.manifest.build.runtime, "?")}/${try(local.manifest.build.architecture, "?")} but Terraform deploys ${var.runtime}/${var.architecture} (lambda_runtime, lambda_architecture): run `hybridshop package --runtime ${var.runtime} --arch ${var.architecture}` or change the tfvars. A mismatch fails at run time with \"No module named psycopg2._psycopg\"."
    }
    precondition {
      condition     = try(local.manifest.functions[var.manifest_key].base64sha256 == filebase64sha256(var.zip_path), false)
      error_message = "${var.zip_path} is not the zip ${var.manifest_path} describes (a partial or foreign build): run `hybridshop package`."
    }
    precondition {
      condition     = var.source_digest == null || try(local.manifest.build.source_digest == var.source_digest, false)
      error_message = "The zips were built from other sources than this checkout (stale build): run `hybridshop package`."
    }
  }

  depends_on = [
    aws_iam_role_policy_attachment.vpc_access,
    aws_iam_role_policy.secrets,
    aws_secretsmanager_secret_version.datastream,
    aws_secretsmanager_secret_version.datastream_given,
  ]
}

# Runs at create and again when the input changes (new migrations, renamed users, a replaced
# database...). A failed bootstrap fails the apply with the function's error message.
resource "aws_lambda_invocation" "bootstrap" {
  function_name = aws_lambda_function.bootstrap.function_name
  input = jsonencode({
    action           = "bootstrap"
    migrations_hash  = var.migrations_hash
    app_db_user      = var.app_db_user
    datastream_user  = var.datastream_db_user
    publication      = var.publication
    replication_slot = var.replication_slot
    # The role's password is altered only when this version differs from the one recorded on it.
    password_version = local.password_version.version_id
    repair_lost_slot = var.repair_lost_slot
  })
  triggers = {
    migrations = var.migrations_hash
    code       = aws_lambda_function.bootstrap.source_code_hash
    # A new Datastream password (secret version replaced) must be set on the role.
    password = local.password_version.version_id
    # A new instance (replaced, restored) has an empty schema, no users, no slot: run again.
    database = var.db_resource_id
    # Only after the Lambdas may reach 5432 (else the first run times out).
    ingress          = join(",", var.db_ingress_rule_ids)
    repair_lost_slot = tostring(var.repair_lost_slot)
  }
}

# Read on every plan (private_vpn only): the address the instance serves from right now,
# `inet_server_addr()` seen by the bootstrap inside the VPC. Datastream's private connectivity
# cannot resolve the RDS DNS name, and the private IP changes on a Multi-AZ failover or a
# replacement; the next plan/apply repoints Datastream to the current one.
data "aws_lambda_invocation" "check" {
  count         = var.report_server_address ? 1 : 0
  function_name = aws_lambda_function.bootstrap.function_name
  input         = jsonencode({ action = "check" })

  depends_on = [aws_lambda_invocation.bootstrap]
}
