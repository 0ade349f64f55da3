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

resource "aws_secretsmanager_secret_version" "datastream" {
  secret_id     = aws_secretsmanager_secret.datastream.id
  secret_string = data.aws_secretsmanager_random_password.datastream.random_password

  # The data source returns a new password on every plan: keep the first one.
  lifecycle {
    ignore_changes = [secret_string]
  }
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
  source_code_hash = filebase64sha256(var.zip_path)
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

  depends_on = [
    aws_iam_role_policy_attachment.vpc_access,
    aws_iam_role_policy.secrets,
    aws_secretsmanager_secret_version.datastream,
  ]
}

# Runs at create and again when the input changes (new migrations, renamed users...). A failed
# bootstrap fails the apply with the function's error message.
resource "aws_lambda_invocation" "bootstrap" {
  function_name = aws_lambda_function.bootstrap.function_name
  input = jsonencode({
    action           = "bootstrap"
    migrations_hash  = var.migrations_hash
    app_db_user      = var.app_db_user
    datastream_user  = var.datastream_db_user
    publication      = var.publication
    replication_slot = var.replication_slot
  })
  triggers = {
    migrations = var.migrations_hash
    code       = aws_lambda_function.bootstrap.source_code_hash
    # A new Datastream password (secret version replaced) must be set on the role.
    password = aws_secretsmanager_secret_version.datastream.version_id
  }
}
