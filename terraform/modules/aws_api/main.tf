# The HTTP API: one Lambda per function of the registry, one route + integration per route key
# (payload 2.0), a JWT authorizer for Google ID tokens, throttling and access logs. The functions
# themselves also check the caller (ALLOWED_CALLERS), because any Google identity can mint a
# token for our audience.

data "aws_partition" "current" {}

locals {
  routes = merge([
    for fn, spec in var.functions : {
      for route in spec.routes : route => {
        function = fn
        method   = split(" ", route)[0]
        path     = split(" ", route)[1]
      }
    }
  ]...)
  # What `hybridshop package` recorded (build/lambda/manifest.json), for the preconditions.
  manifest = try(jsondecode(file(var.manifest_path)), null)
  # Region and account from the API's own ARN (arn:aws:execute-api:REGION:ACCOUNT:ID): no
  # data.aws_region, whose `name` is deprecated in provider 6 and `region` missing in 5.
  api_arn_parts = split(":", aws_apigatewayv2_api.this.execution_arn)
  db_user_arn   = "arn:${data.aws_partition.current.partition}:rds-db:${local.api_arn_parts[3]}:${local.api_arn_parts[4]}:dbuser:${var.db_resource_id}/${var.db_user}"
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

resource "aws_iam_role" "api" {
  name               = "${var.name}-api"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

# ENIs in the VPC + writing logs; X-Ray traces.
resource "aws_iam_role_policy_attachment" "vpc_access" {
  role       = aws_iam_role.api.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  role       = aws_iam_role.api.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# Exactly one database user, addressed by the instance's resource ID (not its name).
data "aws_iam_policy_document" "db_connect" {
  statement {
    actions   = ["rds-db:connect"]
    resources = [local.db_user_arn]
  }
}

resource "aws_iam_role_policy" "db_connect" {
  name   = "rds-iam-connect"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.db_connect.json
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = var.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "this" {
  for_each         = var.functions
  function_name    = "${var.name}-${each.key}"
  description      = each.value.description
  role             = aws_iam_role.api.arn
  handler          = each.value.handler
  runtime          = var.runtime
  architectures    = [var.architecture]
  filename         = each.value.zip_path
  source_code_hash = fileexists(each.value.zip_path) ? filebase64sha256(each.value.zip_path) : null
  timeout          = each.value.timeout_s
  memory_size      = each.value.memory_mb

  reserved_concurrent_executions = var.reserved_concurrency

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  environment {
    variables = {
      DB_AUTH_MODE    = "iam"
      DB_HOST         = var.db_host
      DB_PORT         = tostring(var.db_port)
      DB_NAME         = var.db_name
      DB_USER         = var.db_user
      ALLOWED_CALLERS = join(",", var.allowed_callers)
      # AddProduct: who may list items (the shop, which signs its sellers in itself)
      ALLOWED_SELLERS = join(",", var.allowed_callers)
      LOG_LEVEL       = var.log_level
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tracing_config {
    mode = "Active"
  }

  # Fail the plan, not the first request: missing, foreign, stale or mismatched zips.
  lifecycle {
    precondition {
      condition     = fileexists(each.value.zip_path)
      error_message = "${each.value.zip_path} is missing: run `hybridshop package` (or `hybridshop deploy`) first."
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
      condition     = try(local.manifest.functions[each.key].base64sha256 == filebase64sha256(each.value.zip_path), false)
      error_message = "${each.value.zip_path} is not the zip ${var.manifest_path} describes (a partial or foreign build): run `hybridshop package`."
    }
    precondition {
      condition     = var.source_digest == null || try(local.manifest.build.source_digest == var.source_digest, false)
      error_message = "The zips were built from other sources than this checkout (stale build): run `hybridshop package`."
    }
  }

  depends_on = [
    aws_iam_role_policy_attachment.vpc_access,
    aws_cloudwatch_log_group.function,
  ]
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "hybridshop catalog API (called by the Cloud Run shop with a Google ID token)"
}

resource "aws_apigatewayv2_authorizer" "google" {
  api_id           = aws_apigatewayv2_api.this.id
  name             = "google-id-token"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = [var.jwt_audience]
  }
}

resource "aws_apigatewayv2_integration" "this" {
  for_each               = var.functions
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this[each.key].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = min(30000, each.value.timeout_s * 1000 + 1000)
}

resource "aws_apigatewayv2_route" "this" {
  for_each           = local.routes
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.this[each.value.function].id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.google.id
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/${var.name}/api-access"
  retention_in_days = var.log_retention_days
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttling_rate_limit
    throttling_burst_limit = var.throttling_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      routeKey       = "$context.routeKey"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      integrationMs  = "$context.integrationLatency"
      authError      = "$context.authorizer.error"
      caller         = "$context.authorizer.claims.email"
    })
  }
}

# One permission per route, scoped to that method and path (path parameters become *).
resource "aws_lambda_permission" "api" {
  for_each      = local.routes
  statement_id  = "api-${lower(each.value.method)}-${substr(sha256(each.key), 0, 12)}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value.function].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/${each.value.method}${replace(each.value.path, "/\\{[^}]+\\}/", "*")}"
}
