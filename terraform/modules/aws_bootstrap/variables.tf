variable "name" {
  description = "Prefix of the function, role, secret and log group."
  type        = string
}

variable "zip_path" {
  description = "Path of the bootstrap zip built by `hybridshop package`."
  type        = string
}

variable "handler" {
  description = "Handler of the bootstrap function."
  type        = string
  default     = "hybridshop.lambda_functions.bootstrap.handler"
}

variable "runtime" {
  description = "Lambda Python runtime the zip was built for."
  type        = string
  default     = "python3.12"
}

variable "architecture" {
  description = "Lambda architecture the zip was built for."
  type        = string
  default     = "x86_64"
}

variable "subnet_ids" {
  description = "Private subnets the function runs in."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the function (egress to RDS and the Secrets Manager endpoint)."
  type        = list(string)
}

variable "db_host" {
  description = "RDS endpoint address."
  type        = string
}

variable "db_port" {
  description = "RDS port."
  type        = number
}

variable "db_name" {
  description = "Database to bootstrap."
  type        = string
}

variable "master_secret_arn" {
  description = "ARN of the RDS-managed master user secret."
  type        = string
}

variable "app_db_user" {
  description = "Application user to create (granted rds_iam; the API Lambdas log in as it)."
  type        = string
  default     = "hybridshop_app"
}

variable "datastream_db_user" {
  description = "Replication user to create for Datastream (granted rds_replication; password from Secrets Manager)."
  type        = string
  default     = "hybridshop_datastream"
}

variable "publication" {
  description = "Publication Datastream reads."
  type        = string
  default     = "hybridshop_pub"
}

variable "replication_slot" {
  description = "Logical replication slot (pgoutput) Datastream reads."
  type        = string
  default     = "hybridshop_slot"
}

variable "migrations_hash" {
  description = "Digest of the migration files: the bootstrap is invoked again whenever it changes."
  type        = string
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the Datastream password secret when deleted (0 deletes at once)."
  type        = number
  default     = 7
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
  default     = 90
}

variable "manifest_path" {
  description = "manifest.json written by `hybridshop package` next to the zip (runtime, architecture, digests)."
  type        = string
}

variable "manifest_key" {
  description = "Entry of this function in the manifest's `functions`."
  type        = string
  default     = "Bootstrap"
}

variable "source_digest" {
  description = "Digest of the package sources in this checkout (null skips the stale-build check)."
  type        = string
  default     = null
}

variable "db_resource_id" {
  description = "DBI resource ID of the instance: a new instance re-runs the bootstrap."
  type        = string
}

variable "db_ingress_rule_ids" {
  description = "Security group rules that let the function reach 5432; the bootstrap runs after them."
  type        = list(string)
  default     = []
}

variable "datastream_password" {
  description = "Password of the Datastream user (null: generated once and kept in Secrets Manager). At least 16 characters."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.datastream_password == null || length(coalesce(var.datastream_password, "x")) >= 16
    error_message = "The Datastream password must be at least 16 characters."
  }
}

variable "repair_lost_slot" {
  description = "Drop and re-create the replication slot when PostgreSQL invalidated it (wal_status = lost, past max_slot_wal_keep_size). Changes made while the slot was lost are not streamed: Datastream must backfill the tables again."
  type        = bool
  default     = false
}

variable "report_server_address" {
  description = "Invoke the function's read-only check on every plan and output the instance's current private IP (for Datastream private connectivity)."
  type        = bool
  default     = false
}
