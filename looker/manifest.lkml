# The hybridshop Looker project. Set these once: every view and the model read them.
project_name: "hybridshop"

# The Looker connection to BigQuery (Admin > Connections), in the query time zone UTC.
constant: connection_name {
  value: "hybridshop_bigquery"
  export: override_optional
}

# Where Datastream writes (terraform: var.gcp_project_id and module.analytics.dataset_id).
constant: gcp_project {
  value: "my-gcp-project"
  export: override_optional
}

constant: bigquery_dataset {
  value: "hybridshop"
  export: override_optional
}
