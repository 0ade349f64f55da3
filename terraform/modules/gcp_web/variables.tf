variable "project_id" {
  description = "GCP project."
  type        = string
}

variable "region" {
  description = "Cloud Run region."
  type        = string
}

variable "name" {
  description = "Cloud Run service name and prefix of the service account and secret."
  type        = string
  default     = "hybridshop-web"
}

variable "image" {
  description = "Full image reference with an immutable tag or digest (never :latest), e.g. REGION-docker.pkg.dev/PROJECT/hybridshop/shop:TAG."
  type        = string

  validation {
    condition     = !endswith(var.image, ":latest") && (strcontains(var.image, "@sha256:") || can(regex(":[^/]+$", var.image)))
    error_message = "image must carry an explicit tag or digest, not :latest."
  }

  validation {
    condition     = !endswith(var.image, ":not-built")
    error_message = "The shop image is not built (no build/cloudrun/IMAGE_TAG): run `hybridshop deploy`, which packages, builds it with Cloud Build and applies; or set shop_image."
  }
}

variable "api_base_url" {
  description = "Base URL of the AWS HTTP API."
  type        = string
}

variable "api_audience" {
  description = "Audience of the Google ID tokens the shop sends to the API."
  type        = string
}

variable "public" {
  description = "Let anyone on the internet open the shop (grants roles/run.invoker to allUsers). Off by default."
  type        = bool
  default     = false
}

variable "invoker_members" {
  description = "Principals allowed to open the shop when it is not public (e.g. user:you@example.com)."
  type        = list(string)
  default     = []
}

variable "min_instances" {
  description = "Minimum Cloud Run instances (0 scales to zero)."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Maximum Cloud Run instances (caps cost and API load)."
  type        = number
  default     = 3
}

variable "deletion_protection" {
  description = "Refuse to delete the Cloud Run service (provider v7 defaults to true)."
  type        = bool
  default     = false
}

variable "concurrency" {
  description = "Requests per instance: Cloud Run's max_instance_request_concurrency and gunicorn's threads (WEB_THREADS)."
  type        = number
  default     = 8
}
