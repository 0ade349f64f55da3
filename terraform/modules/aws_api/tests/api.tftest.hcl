# terraform test (mocked AWS provider, offline). Fixtures: two tiny zips and their manifest
# (python3.12 / arm64, source digest "test-sources").

mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/shop-test-api" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:test" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:shop-test-fn"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:shop-test-fn/invocations"
    }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abc123"
      api_endpoint  = "https://abc123.execute-api.eu-west-1.amazonaws.com"
    }
  }
}

variables {
  name = "shop-test"
  functions = {
    GetProducts = {
      handler     = "hybridshop.lambda_functions.get_products.handler"
      routes      = ["GET /products", "GET /products/{id}"]
      timeout_s   = 10
      memory_mb   = 256
      zip_path    = "./tests/fixtures/GetProducts.zip"
      description = "List"
    }
    AddProduct = {
      handler     = "hybridshop.lambda_functions.add_product.handler"
      routes      = ["POST /products"]
      timeout_s   = 10
      memory_mb   = 256
      zip_path    = "./tests/fixtures/AddProduct.zip"
      description = "Add"
    }
  }
  manifest_path      = "./tests/fixtures/manifest.json"
  source_digest      = "test-sources"
  runtime            = "python3.12"
  architecture       = "arm64"
  subnet_ids         = ["subnet-0a"]
  security_group_ids = ["sg-0a"]
  db_host            = "db.example"
  db_port            = 5432
  db_name            = "hybridshop"
  db_user            = "hybridshop_app"
  db_resource_id     = "db-ABCDEFGHIJKL"
  allowed_callers    = ["shop@example.iam.gserviceaccount.com"]
  jwt_audience       = "hybridshop-api"
}

run "matching_build_applies" {
  command = apply

  assert {
    condition     = output.db_user_arn == "arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABCDEFGHIJKL/hybridshop_app"
    error_message = "rds-db:connect ARN: region and account of the API, the DBI resource id, the app user."
  }
  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.architectures == tolist(["arm64"]) && f.runtime == "python3.12"])
    error_message = "Functions deploy what was built."
  }
}

run "runtime_mismatch_fails_the_plan" {
  command = plan

  variables {
    runtime = "python3.13"
  }

  expect_failures = [aws_lambda_function.this]
}

run "architecture_mismatch_fails_the_plan" {
  command = plan

  variables {
    architecture = "x86_64"
  }

  expect_failures = [aws_lambda_function.this]
}

run "stale_build_fails_the_plan" {
  command = plan

  variables {
    source_digest = "sources-changed-since-the-build"
  }

  expect_failures = [aws_lambda_function.this]
}

run "missing_manifest_fails_the_plan" {
  command = plan

  variables {
    manifest_path = "./tests/fixtures/none.json"
  }

  expect_failures = [aws_lambda_function.this]
}
