variable "name" {
  description = "Prefix of every resource (lowercase letters, digits and dashes)."
  type        = string
  default     = "hybridshop"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}$", var.name))
    error_message = "name must be 3-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region of the API and the database."
  type        = string
  default     = "eu-west-1"
}

variable "gcp_project_id" {
  description = "GCP project of the shop and the analytics."
  type        = string
}

variable "gcp_region" {
  description = "GCP region of Cloud Run, Artifact Registry and Datastream."
  type        = string
  default     = "europe-west1"
}

variable "datastream_connectivity" {
  description = "How Datastream reaches RDS: \"ip_allowlist\" (public endpoint, 5432 open only to Datastream's regional /32s, TLS forced) or \"private_vpn\" (HA VPN between the clouds + Datastream private connectivity, RDS stays private)."
  type        = string
  default     = "ip_allowlist"

  validation {
    condition     = contains(["ip_allowlist", "private_vpn"], var.datastream_connectivity)
    error_message = "datastream_connectivity must be \"ip_allowlist\" or \"private_vpn\"."
  }
}

variable "lambda_runtime" {
  description = "Python runtime of the Lambdas; must match `hybridshop package --runtime`."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 or python3.13."
  }
}

variable "lambda_architecture" {
  description = "Architecture of the Lambdas; must match `hybridshop package --arch`."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "lambda_build_dir" {
  description = "Folder holding the zips written by `hybridshop package` (null: ../build/lambda next to this folder)."
  type        = string
  default     = null
}

variable "rds_ca_bundle_path" {
  description = "PEM bundle of the RDS certificate authorities for Datastream's TLS check (null: the one `hybridshop package` downloads into src/hybridshop/db/certs/)."
  type        = string
  default     = null
}

variable "shop_image" {
  description = "Shop image with an immutable tag, pushed by Cloud Build: <region>-docker.pkg.dev/<project>/hybridshop/shop:<tag>."
  type        = string
}

variable "shop_public" {
  description = "Let anyone open the shop (roles/run.invoker for allUsers). Off unless set explicitly."
  type        = bool
  default     = false
}

variable "shop_invoker_members" {
  description = "Principals allowed to open a non-public shop, e.g. [\"user:you@example.com\"]."
  type        = list(string)
  default     = []
}

variable "api_audience" {
  description = "Audience of the Google ID tokens the shop sends and the API's JWT authorizer requires."
  type        = string
  default     = "hybridshop-api"
}

variable "api_throttling_rate_limit" {
  description = "Steady-state requests per second the API accepts."
  type        = number
  default     = 50
}

variable "api_throttling_burst_limit" {
  description = "Request burst the API accepts."
  type        = number
  default     = 100
}

variable "db_engine_version" {
  description = "PostgreSQL major version on RDS (16 or newer)."
  type        = string
  default     = "17"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.micro"
}

variable "db_multi_az" {
  description = "Multi-AZ standby for RDS."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Days of RDS automated backups."
  type        = number
  default     = 7
}

variable "db_deletion_protection" {
  description = "Protect the RDS instance from deletion (set false and apply before destroying)."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Skip the final RDS snapshot on destroy (throwaway environments only)."
  type        = bool
  default     = false
}

variable "datastream_data_freshness" {
  description = "Datastream's BigQuery data_freshness (max staleness), e.g. \"900s\"."
  type        = string
  default     = "900s"
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset."
  type        = string
  default     = "EU"
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group, in days."
  type        = number
  default     = 90
}

variable "alarm_email" {
  description = "E-mail for database alarms (replication slot lag, free storage); empty for none."
  type        = string
  default     = ""
}
