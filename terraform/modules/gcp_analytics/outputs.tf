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
