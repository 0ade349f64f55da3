# The web shop on Cloud Run, under its own service account (which the API trusts), with the
# Flask secret key in Secret Manager, and public access only when var.public says so.

resource "google_service_account" "shop" {
  project      = var.project_id
  account_id   = var.name
  display_name = "${var.name} web shop (Cloud Run)"
  description  = "Identity of the shop; the AWS API accepts only ID tokens of this account"
}

resource "random_password" "secret_key" {
  length  = 64
  special = false
}

resource "google_secret_manager_secret" "secret_key" {
  project   = var.project_id
  secret_id = "${var.name}-secret-key"

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "secret_key" {
  secret      = google_secret_manager_secret.secret_key.id
  secret_data = random_password.secret_key.result
}

resource "google_secret_manager_secret_iam_member" "shop_reads_secret_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.secret_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.shop.email}"
}

# The sellers' sign-in token for "Sell an item" (SHOP_ADMIN_TOKEN). Without it the deployed
# shop hides the page; read it with
#   gcloud secrets versions access latest --secret <seller_token_secret output>
resource "random_password" "seller_token" {
  length  = 40
  special = false
}

resource "google_secret_manager_secret" "seller_token" {
  project   = var.project_id
  secret_id = "${var.name}-seller-token"

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "seller_token" {
  secret      = google_secret_manager_secret.seller_token.id
  secret_data = random_password.seller_token.result
}

resource "google_secret_manager_secret_iam_member" "shop_reads_seller_token" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.seller_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.shop.email}"
}

resource "google_cloud_run_v2_service" "shop" {
  project             = var.project_id
  name                = var.name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account = google_service_account.shop.email
    # One setting: Cloud Run sends at most as many requests as gunicorn has threads
    # (WEB_THREADS below, read by the image's command).
    max_instance_request_concurrency = var.concurrency
    timeout                          = "30s"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = true
      }

      env {
        name  = "API_BASE_URL"
        value = var.api_base_url
      }
      env {
        name  = "API_AUDIENCE"
        value = var.api_audience
      }
      env {
        name  = "SHOP_ENV"
        value = "production"
      }
      env {
        name  = "WEB_THREADS"
        value = tostring(var.concurrency)
      }
      env {
        name = "SECRET_KEY"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.secret_key.secret_id
            version = google_secret_manager_secret_version.secret_key.version
          }
        }
      }
      env {
        name = "SHOP_ADMIN_TOKEN"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.seller_token.secret_id
            version = google_secret_manager_secret_version.seller_token.version
          }
        }
      }

      # Paths ending in z are reserved by Cloud Run's front end: /health, not /healthz.
      # Liveness never calls the API in the other cloud (restarting would not fix it).
      startup_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        period_seconds    = 2
        failure_threshold = 15
      }

      liveness_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        period_seconds    = 30
        failure_threshold = 3
        timeout_seconds   = 5
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.shop_reads_secret_key,
    google_secret_manager_secret_iam_member.shop_reads_seller_token,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "public" {
  count    = var.public ? 1 : 0
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.shop.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.invoker_members)
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.shop.name
  role     = "roles/run.invoker"
  member   = each.value
}
