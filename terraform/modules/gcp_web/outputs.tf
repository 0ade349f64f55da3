output "url" {
  description = "HTTPS URL of the shop."
  value       = google_cloud_run_v2_service.shop.uri
}

output "service_name" {
  description = "Cloud Run service name."
  value       = google_cloud_run_v2_service.shop.name
}

output "service_account_email" {
  description = "E-mail of the shop's service account (the `email` claim of its ID tokens)."
  value       = google_service_account.shop.email
}

output "service_account_unique_id" {
  description = "Unique ID of the shop's service account (the `sub` claim of its ID tokens)."
  value       = google_service_account.shop.unique_id
}

output "seller_token_secret" {
  description = "Secret Manager secret holding the sellers' sign-in token for \"Sell an item\" (SHOP_ADMIN_TOKEN)."
  value       = google_secret_manager_secret.seller_token.secret_id
}
