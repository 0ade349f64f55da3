variable "name" {
  description = "Name of this environment, prefix of every resource in both clouds (two environments fit in one account/project with different names). 3-20 lowercase letters, digits and single hyphens, a letter first, no trailing hyphen (RDS identifier rules; GCP service account ids add -build/-web)."
  type        = string
  default     = "hybridshop"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 3-20 lowercase letters, digits and single hyphens, start with a letter and not end with a hyphen."
  }
}

variable "db_password" {
  description = "Optional password of the PostgreSQL user Datastream replicates with (at least 16 characters; null: generated). Not the master password: RDS generates and keeps that one in Secrets Manager (manage_master_user_password), and only the bootstrap Lambda reads it. Stored in Secrets Manager and in the Terraform state; a change is applied to the role and to Datastream in the same apply."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.db_password == null || length(coalesce(var.db_password, "x")) >= 16
    error_message = "db_password must be at least 16 characters (or left unset to generate one)."
  }
}

variable "db_repair_lost_slot" {
  description = "Drop and re-create the replication slot if PostgreSQL invalidated it (wal_status lost, after a stream stopped longer than max_slot_wal_keep_size allows). Changes made meanwhile are not replicated: start a backfill of the stream afterwards (docs/deploy.md). Leave false otherwise."
  type        = bool
  default     = false
}

variable "db_ca_cert_identifier" {
  description = "RDS certificate authority of the instance; Datastream verifies the server against this CA's root for aws_region."
  type        = string
  default     = "rds-ca-rsa2048-g1"

  validation {
    condition     = contains(["rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"], var.db_ca_cert_identifier)
    error_message = "db_ca_cert_identifier must be rds-ca-rsa2048-g1, rds-ca-rsa4096-g1 or rds-ca-ecc384-g1."
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
  description = "How Datastream reaches RDS: \"ip_allowlist\" (public endpoint, 5432 open only to Datastream's regional /32s, TLS forced) or \"private_vpn\" (HA VPN between the clouds + Datastream private connectivity, RDS stays private). Residual risk of ip_allowlist: those /32s are shared by every Datastream customer of the region, so any of them can reach the port; only TLS, the replication user's password and RDS's own limits keep them out. Use private_vpn for production."
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

variable "build_dir" {
  description = "Folder `hybridshop package` writes (lambda/, rds-ca/, cloudrun/); null: ../build next to this folder, its default wherever it runs."
  type        = string
  default     = null
}

variable "rds_ca_certificate_path" {
  description = "PEM file with the one RDS root CA Datastream verifies the server with (null: build/rds-ca/<aws_region>/<db_ca_cert_identifier>.pem from `hybridshop package`)."
  type        = string
  default     = null
}

variable "shop_image" {
  description = "Shop image with an immutable tag (null: the one `hybridshop deploy` built, <registry>/shop:<build/cloudrun/IMAGE_TAG>)."
  type        = string
  default     = null
}

variable "shop_concurrency" {
  description = "Requests one Cloud Run instance serves at once; also gunicorn's thread count in the container (one setting, so Cloud Run never sends more requests than there are threads)."
  type        = number
  default     = 8

  validation {
    condition     = var.shop_concurrency >= 1 && var.shop_concurrency <= 80
    error_message = "shop_concurrency must be between 1 and 80."
  }
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
  description = "Location of the BigQuery dataset (null: gcp_region, next to Datastream). Otherwise gcp_region itself or the multi-region holding it (EU for europe-*, US for us-*)."
  type        = string
  default     = null

  validation {
    condition = var.bigquery_location == null || contains([
      var.gcp_region,
      startswith(var.gcp_region, "europe-") ? "EU" : "",
      startswith(var.gcp_region, "us-") ? "US" : "",
    ], coalesce(var.bigquery_location, "-"))
    error_message = "bigquery_location must be gcp_region or the multi-region that holds it (EU for europe-*, US for us-*), so Datastream writes to a dataset in its own location."
  }
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
