variable "name" {
  description = "Prefix for every resource name and Name tag."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 range of the VPC. Must not overlap the GCP side when the HA VPN option is used."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Number of availability zones to spread subnets over (RDS subnet groups need at least two)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "public_subnets_enabled" {
  description = "Create public subnets and an internet gateway. Only the Datastream IP-allowlist option needs them (for the RDS endpoint); Lambdas never use them."
  type        = bool
}

variable "interface_endpoints" {
  description = "AWS services reached from the private subnets through interface VPC endpoints instead of a NAT gateway (short names, e.g. secretsmanager)."
  type        = list(string)
  default     = ["secretsmanager"]
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group, in days."
  type        = number
  default     = 90
}

variable "availability_zone_suffixes" {
  description = "Zone letters the subnets may use (the first az_count available ones are taken)."
  type        = list(string)
  default     = ["a", "b", "c"]
}
