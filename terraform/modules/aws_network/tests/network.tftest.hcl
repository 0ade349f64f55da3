# terraform test (mocked AWS provider, offline).

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1c", "eu-west-1a", "eu-west-1d", "eu-west-1b"] }
  }
  mock_data "aws_vpc_endpoint_service" {
    defaults = { service_name = "com.amazonaws.eu-west-1.secretsmanager" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/shop-test-flow-logs" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:test" }
  }
}

variables {
  name                   = "shop-test"
  public_subnets_enabled = true
}

# Zones by letter, in order, whatever order the API lists them in (and a new zone "d" is not used).
run "zones_are_picked_by_letter" {
  command = plan

  assert {
    condition     = aws_subnet.private[0].availability_zone == "eu-west-1a" && aws_subnet.private[1].availability_zone == "eu-west-1b"
    error_message = "The first two allowed zone letters, sorted."
  }
}

# The endpoint's regional service name comes from the provider (no data.aws_region.name).
run "endpoint_service_name_from_the_provider" {
  command = plan

  assert {
    condition     = aws_vpc_endpoint.interface["secretsmanager"].service_name == "com.amazonaws.eu-west-1.secretsmanager"
    error_message = "The endpoint uses the service name the provider resolved."
  }
}

run "private_mode_has_no_public_subnets" {
  command = plan

  variables {
    public_subnets_enabled = false
  }

  assert {
    condition     = length(aws_subnet.public) == 0 && length(aws_internet_gateway.this) == 0
    error_message = "No public subnets nor internet gateway in private_vpn mode."
  }
}
