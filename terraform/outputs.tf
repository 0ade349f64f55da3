output "shop_url" {
  description = "URL of the web shop on Cloud Run."
  value       = module.web.url
}

output "shop_seller_token_secret" {
  description = "Secret Manager secret with the sellers' sign-in token for the shop's \"Sell an item\" (gcloud secrets versions access latest --secret <this>)."
  value       = module.web.seller_token_secret
}

output "api_url" {
  description = "Base URL of the HTTP API (answers 401 without a Google ID token of the shop)."
  value       = module.api.api_endpoint
}

output "bigquery_dataset" {
  description = "BigQuery dataset Datastream replicates into."
  value       = "${var.gcp_project_id}.${module.analytics.dataset_id}"
}

output "datastream_stream" {
  description = "Datastream stream ID."
  value       = module.analytics.stream_id
}

output "database_endpoint" {
  description = "RDS endpoint (reachable only from the Lambdas and Datastream)."
  value       = "${module.database.address}:${module.database.port}"
}

output "bootstrap_result" {
  description = "Report of the last database bootstrap run."
  value       = module.bootstrap.result
}

output "check_commands" {
  description = "Commands to verify each part after apply."
  value = {
    shop       = "curl -sS -o /dev/null -w '%%{http_code}\\n' -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" ${module.web.url}/"
    api_denied = "curl -sS -i ${module.api.api_endpoint}/products   # expect 401 Unauthorized"
    api_routes = "aws apigatewayv2 get-routes --region ${var.aws_region} --api-id ${module.api.api_id} --query 'Items[].RouteKey'"
    bootstrap  = "aws lambda invoke --region ${var.aws_region} --function-name ${module.bootstrap.function_name} --cli-binary-format raw-in-base64-out --payload '{\"action\":\"check\"}' /dev/stdout"
    database   = "aws rds describe-db-instances --region ${var.aws_region} --db-instance-identifier ${module.database.identifier} --query 'DBInstances[0].[DBInstanceStatus,IAMDatabaseAuthenticationEnabled,PubliclyAccessible]'"
    stream     = "gcloud datastream streams describe ${module.analytics.stream_id} --location=${var.gcp_region} --project=${var.gcp_project_id} --format='value(state)'"
    bigquery   = "bq query --use_legacy_sql=false 'SELECT COUNT(*) FROM `${var.gcp_project_id}.${module.analytics.dataset_id}.public_products`'"
  }
}

output "build_service_account" {
  description = "Service account Cloud Build runs the image build as (hybridshop deploy uses it)."
  value       = module.registry.build_service_account
}

output "build_bucket" {
  description = "Bucket the image build's sources are staged in."
  value       = module.registry.build_bucket
}

output "shop_image" {
  description = "Image Cloud Run runs."
  value       = local.shop_image
}

output "analytics_views" {
  description = "BigQuery views deployed from analytics/bigquery/."
  value       = module.analytics.views
}

output "analytics_views_pending" {
  description = "Views still placeholders until Datastream's first backfill created their tables (apply again after it)."
  value       = module.analytics.views_pending
}
