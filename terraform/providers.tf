provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project   = var.name
      ManagedBy = "terraform"
    }
  }
}

provider "google" {
  project = var.gcp_project_id
  region  = var.gcp_region

  # Bill API quota to the project itself: user credentials (gcloud auth application-default
  # login) otherwise have no quota project and some APIs (Service Usage, Datastream) refuse.
  user_project_override = true
  billing_project       = var.gcp_project_id

  default_labels = {
    project    = var.name
    managed-by = "terraform"
  }
}
