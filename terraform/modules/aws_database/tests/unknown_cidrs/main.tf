# Test fixture (terraform test only): calls the database module with an allowlist that is
# unknown at plan, as the root's Datastream static-IP list is when its data source is read at
# apply (API enabled in the same run). timestamp() is unknown until apply.
terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name" {
  description = "Prefix of the resources."
  type        = string
  default     = "shop-test"
}

locals {
  unknown_ips = [for part in split(",", timestamp()) : "203.0.113.${length(part) % 200}/32"]
}

module "database" {
  source = "../.."

  name                      = var.name
  vpc_id                    = "vpc-0123456789abcdef0"
  subnet_ids                = ["subnet-0a", "subnet-0b"]
  publicly_accessible       = true
  client_security_group_ids = ["sg-0123456789abcdef0"]
  allowed_cidrs             = local.unknown_ips
}
