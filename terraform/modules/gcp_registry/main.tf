# Docker repository for the shop image, and what Cloud Build needs to build it on a new project:
# its own service account with exactly the roles the build uses (where
# iam.automaticIamGrantsForDefaultServiceAccounts is enforced, the Compute Engine default
# account Cloud Build falls back to has no roles at all) and a staging bucket for the sources.
# `hybridshop deploy` applies this module first (-target), builds, then applies the rest,
# because Cloud Run can only be created from an image that exists. Tags are immutable.

resource "google_artifact_registry_repository" "shop" {
  project       = var.project_id
  location      = var.region
  repository_id = var.repository_id
  format        = "DOCKER"
  description   = "${var.name} web shop images (built by Cloud Build from `hybridshop package`)"

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

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name}-build"
  display_name = "${var.name} image build (Cloud Build)"
  description  = "Builds the shop image: reads the staged sources, pushes to the repository, writes build logs"
}

# Push (and read back) images of this repository only.
resource "google_artifact_registry_repository_iam_member" "build_pushes" {
  project    = var.project_id
  location   = google_artifact_registry_repository.shop.location
  repository = google_artifact_registry_repository.shop.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Build logs go to Cloud Logging only (cloudbuild.yaml: logging CLOUD_LOGGING_ONLY).
resource "google_project_iam_member" "build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# `gcloud builds submit --gcs-source-staging-dir gs://<bucket>/source` uploads here; the build
# reads it. Private, uniform access, old uploads deleted after a week.
resource "google_storage_bucket" "build_sources" {
  # checkov:skip=CKV_GCP_62:only staged build sources (public code of this repository, no secrets), deleted after 7 days; Cloud Audit Logs record who wrote them
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name}-build"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}
