# Docker repository for the shop image. Applied first on its own (-target), because the image
# must be pushed before Cloud Run can run it. Tags are immutable: every build gets a new tag.

resource "google_artifact_registry_repository" "shop" {
  project       = var.project_id
  location      = var.region
  repository_id = var.repository_id
  format        = "DOCKER"
  description   = "hybridshop web shop images (built by Cloud Build from `hybridshop package`)"

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.keep_versions
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }
}
