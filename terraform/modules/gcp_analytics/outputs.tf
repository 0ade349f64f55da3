output "dataset_id" {
  description = "BigQuery dataset holding the replicated tables."
  value       = google_bigquery_dataset.analytics.dataset_id
}

output "stream_id" {
  description = "Datastream stream ID."
  value       = google_datastream_stream.this.stream_id
}

output "stream_name" {
  description = "Full resource name of the stream."
  value       = google_datastream_stream.this.name
}

output "views" {
  description = "Views deployed from the views folder."
  value       = sort(keys(google_bigquery_table.view))
}

output "views_pending" {
  description = "Views still placeholders because their tables do not exist yet (apply again after the backfill)."
  value       = sort([for name, ready in local.views_ready : name if !ready])
}
