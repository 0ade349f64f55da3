output "repository_url" {
  description = "Docker prefix for images, e.g. <url>/shop:<tag>."
  value       = "${google_artifact_registry_repository.shop.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.shop.repository_id}"
}
