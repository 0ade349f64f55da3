variable "name" {
  description = "Instance identifier and prefix of related resources (RDS rules: a letter first, letters, digits and single hyphens, no trailing hyphen)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must start with a lowercase letter, hold lowercase letters, digits and single hyphens, and not end with a hyphen (RDS identifier rules), at most 42 characters."
  }
}

variable "vpc_id" {
  description = "VPC that holds the instance."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the DB subnet group: public ones in ip_allowlist mode, private ones otherwise."
  type        = list(string)
}

variable "publicly_accessible" {
  description = "Give the endpoint a public address. Only for Datastream's IP allowlist; ingress stays limited to its /32s and TLS is forced."
  type        = bool
}

variable "engine_version" {
  description = "PostgreSQL major version (16 or newer: logical replication of the RDS setup we test)."
  type        = string
  default     = "17"

  validation {
    condition     = can(regex("^(1[6-9]|[2-9][0-9])$", var.engine_version))
    error_message = "engine_version must be a major version, 16 or newer (e.g. \"17\")."
  }
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.micro"
}

variable "allocated_storage_gb" {
  description = "Initial gp3 storage in GB."
  type        = number
  default     = 20
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling in GB."
  type        = number
  default     = 100
}

variable "db_name" {
  description = "Database created in the instance."
  type        = string
  default     = "hybridshop"
}

variable "master_username" {
  description = "Master user (used only by the bootstrap Lambda; its password is managed by RDS in Secrets Manager)."
  type        = string
  default     = "hybridshop_admin"
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1
    error_message = "Automated backups must be on (at least 1 day)."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance (set false, apply, then destroy to tear down)."
  type        = bool
  default     = true
}

variable "skip_final_snapshot" {
  description = "Skip the final snapshot on deletion (only for throwaway environments)."
  type        = bool
  default     = false
}

variable "multi_az" {
  description = "Standby in a second AZ (doubles the instance cost)."
  type        = bool
  default     = false
}

variable "client_security_group_ids" {
  description = "Security groups allowed to reach 5432 (the Lambdas)."
  type        = list(string)
}

variable "allowed_cidrs" {
  description = "IPv4 ranges allowed to reach 5432 through one prefix-list rule: Datastream's static IPs as /32s, or its private-connectivity /29. May be unknown at plan. Never 0.0.0.0/0. Residual risk of the /32s: they are shared by every Datastream user of the region, so TLS, the password and pg_hba are what keep other tenants out; use private_vpn for production."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c) && tonumber(split("/", c)[1]) >= 8])
    error_message = "allowed_cidrs must be valid, narrow IPv4 ranges; 0.0.0.0/0 is refused."
  }
}

variable "max_slot_wal_keep_size_mb" {
  description = "Upper bound of WAL a replication slot may retain (MB): a stalled stream invalidates its slot instead of filling the disk."
  type        = number
  default     = 5120
}

variable "ca_cert_identifier" {
  description = "RDS server certificate authority (Datastream and the Lambdas verify it)."
  type        = string
  default     = "rds-ca-rsa2048-g1"
}

variable "alarm_email" {
  description = "E-mail that receives replication-lag and storage alarms (empty: alarms without notification)."
  type        = string
  default     = ""
}

variable "replication_lag_alarm_mb" {
  description = "Alarm when the oldest replication slot retains more WAL than this (MB)."
  type        = number
  default     = 1024
}

variable "monitoring_interval_s" {
  description = "Enhanced monitoring interval in seconds (0 turns it off; 1, 5, 10, 15, 30 or 60)."
  type        = number
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.monitoring_interval_s)
    error_message = "monitoring_interval_s must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "allowed_cidrs_max" {
  description = "Capacity of the Datastream prefix list (each entry counts as one rule against the security group's rule quota)."
  type        = number
  default     = 20
}

variable "cloudwatch_log_exports" {
  description = "RDS logs exported to CloudWatch, each into a log group created here with log_retention_days."
  type        = list(string)
  default     = ["postgresql", "upgrade"]
}

variable "log_retention_days" {
  description = "Retention of the exported RDS log groups, in days."
  type        = number
  default     = 90
}
