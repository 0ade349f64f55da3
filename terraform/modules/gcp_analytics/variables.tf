variable "project_id" {
  description = "GCP project."
  type        = string
}

variable "region" {
  description = "Region of Datastream (and its static IPs)."
  type        = string
}

variable "name" {
  description = "Environment name: prefix of the Datastream profiles, stream and private connection."
  type        = string
  default     = "hybridshop"
}

variable "views_dir" {
  description = "Folder of the BigQuery views, one <view_name>.sql each, tables written as `${project}.${dataset}.public_orders`."
  type        = string
}

variable "dataset_id" {
  description = "BigQuery dataset Datastream writes into (single dataset: tables named public_<table>)."
  type        = string
  default     = "hybridshop"
}

variable "dataset_location" {
  description = "BigQuery dataset location (EU, US or a region)."
  type        = string
  default     = "EU"
}

variable "delete_dataset_contents_on_destroy" {
  description = "Let `terraform destroy` delete the dataset even when it holds tables."
  type        = bool
  default     = false
}

variable "db_host" {
  description = "Host Datastream connects to: the RDS endpoint (IP allowlist) or its private IP (private connectivity)."
  type        = string
}

variable "db_port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
}

variable "db_name" {
  description = "Source database."
  type        = string
}

variable "db_user" {
  description = "Replication user created by the bootstrap Lambda."
  type        = string
}

variable "db_password" {
  description = "Password of the replication user (from AWS Secrets Manager)."
  type        = string
  sensitive   = true
}

variable "rds_ca_certificate" {
  description = "PEM of the one RDS root CA Datastream verifies the server against (the region's root for the instance's ca_cert_identifier; not the global bundle)."
  type        = string

  validation {
    condition     = length(regexall("BEGIN CERTIFICATE", var.rds_ca_certificate)) == 1
    error_message = "rds_ca_certificate must hold exactly one PEM certificate, the region's RDS root CA: run `hybridshop package` (it writes build/rds-ca/<region>/<ca id>.pem)."
  }
}

variable "publication" {
  description = "Publication created by the bootstrap Lambda."
  type        = string
}

variable "replication_slot" {
  description = "Replication slot created by the bootstrap Lambda."
  type        = string
}

variable "schema" {
  description = "Source schema."
  type        = string
  default     = "public"
}

variable "tables" {
  description = "Tables the stream replicates (ours only)."
  type        = list(string)
  default     = ["products", "orders"]
}

variable "data_freshness" {
  description = "Staleness BigQuery may show before applying pending changes (seconds, e.g. \"900s\")."
  type        = string
  default     = "900s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.data_freshness))
    error_message = "data_freshness must be a duration in seconds, e.g. \"900s\"."
  }
}

variable "private_connectivity" {
  description = "Use Datastream private connectivity (VPC peering into private_network) instead of the IP allowlist."
  type        = bool
  default     = false
}

variable "private_network_id" {
  description = "GCP VPC (id) Datastream peers with in private mode; null in IP-allowlist mode."
  type        = string
  default     = null
}

variable "private_connection_cidr" {
  description = "Free /29 of the GCP VPC reserved for Datastream's peering."
  type        = string
  default     = "10.60.255.0/29"
}
