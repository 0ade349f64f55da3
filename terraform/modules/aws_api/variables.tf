variable "name" {
  description = "Prefix of the API, functions, roles and log groups."
  type        = string
}

variable "functions" {
  description = "API functions by logical name (mirrors hybridshop.lambda_functions.FUNCTIONS): handler, HTTP API route keys, timeout, memory and the zip built by `hybridshop package`."
  type = map(object({
    handler     = string
    routes      = list(string)
    timeout_s   = number
    memory_mb   = number
    zip_path    = string
    description = string
  }))
}

variable "runtime" {
  description = "Lambda Python runtime the zips were built for."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be python3.12 or python3.13."
  }
}

variable "architecture" {
  description = "Lambda architecture the zips were built for (x86_64 or arm64)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "subnet_ids" {
  description = "Private subnets the functions run in."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the functions."
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
  description = "Database name."
  type        = string
}

variable "db_user" {
  description = "Application database user (IAM authentication, created by the bootstrap Lambda)."
  type        = string
}

variable "db_resource_id" {
  description = "DBI resource ID of the instance (for the rds-db:connect ARN)."
  type        = string
}

variable "allowed_callers" {
  description = "JWT `sub`/`email` values the functions accept (the Cloud Run service account's unique ID and e-mail)."
  type        = list(string)
}

variable "jwt_issuer" {
  description = "Issuer the JWT authorizer trusts."
  type        = string
  default     = "https://accounts.google.com"
}

variable "jwt_audience" {
  description = "Audience Google ID tokens must carry (the web shop requests tokens for it)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the function and access log groups, in days."
  type        = number
  default     = 90
}

variable "log_level" {
  description = "LOG_LEVEL of the functions."
  type        = string
  default     = "INFO"
}

variable "throttling_rate_limit" {
  description = "Steady-state requests per second the stage accepts."
  type        = number
  default     = 50
}

variable "throttling_burst_limit" {
  description = "Request burst the stage accepts."
  type        = number
  default     = 100
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions per function (null: unreserved; new accounts have a quota of 10 and cannot reserve)."
  type        = number
  default     = null
}

variable "manifest_path" {
  description = "manifest.json written by `hybridshop package` next to the zips (runtime, architecture, digests)."
  type        = string
}

variable "source_digest" {
  description = "Digest of the package sources in this checkout (null skips the stale-build check)."
  type        = string
  default     = null
}
