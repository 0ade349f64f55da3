output "repository_url" {
  description = "Docker prefix for images, e.g. <url>/shop:<tag>."
  value       = "${google_artifact_registry_repository.shop.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.shop.repository_id}"
}

output "build_service_account" {
  description = "Full name of the build's service account (gcloud builds submit --service-account)."
  value       = google_service_account.build.id
}

output "build_service_account_email" {
  description = "E-mail of the build's service account."
  value       = google_service_account.build.email
}

output "build_bucket" {
  description = "Bucket the build sources are staged in (gs://<bucket>/source)."
  value       = google_storage_bucket.build_sources.name
}
