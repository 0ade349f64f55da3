variable "project_id" {
  description = "GCP project."
  type        = string
}

variable "region" {
  description = "Region of the repository (same as Cloud Run)."
  type        = string
}

variable "name" {
  description = "Environment name: prefix of the build service account and bucket."
  type        = string
  default     = "hybridshop"
}

variable "repository_id" {
  description = "Artifact Registry repository name."
  type        = string
  default     = "hybridshop"
}

variable "keep_versions" {
  description = "Most recent image versions kept by the cleanup policy."
  type        = number
  default     = 10
}
