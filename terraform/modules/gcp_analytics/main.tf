# Analytics: the BigQuery dataset and a Datastream stream RDS -> BigQuery (backfill, merge
# mode, only our tables, TLS with server verification against the RDS CA).
# Views are a follow-up: they must be created after Datastream's first backfill made the tables.

resource "google_bigquery_dataset" "analytics" {
  project                    = var.project_id
  dataset_id                 = var.dataset_id
  location                   = var.dataset_location
  description                = "hybridshop catalog and orders replicated from RDS by Datastream"
  delete_contents_on_destroy = var.delete_dataset_contents_on_destroy
}

resource "google_datastream_private_connection" "this" {
  count                 = var.private_connectivity ? 1 : 0
  project               = var.project_id
  location              = var.region
  private_connection_id = "hybridshop-private"
  display_name          = "hybridshop private connectivity"

  vpc_peering_config {
    vpc    = var.private_network_id
    subnet = var.private_connection_cidr
  }
}

resource "google_datastream_connection_profile" "source" {
  project               = var.project_id
  location              = var.region
  connection_profile_id = "hybridshop-rds"
  display_name          = "hybridshop RDS PostgreSQL"

  postgresql_profile {
    hostname = var.db_host
    port     = var.db_port
    database = var.db_name
    username = var.db_user
    password = var.db_password

    ssl_config {
      server_verification {
        ca_certificate = var.rds_ca_certificate
      }
    }
  }

  dynamic "private_connectivity" {
    for_each = google_datastream_private_connection.this
    content {
      private_connection = private_connectivity.value.id
    }
  }
}

resource "google_datastream_connection_profile" "destination" {
  project               = var.project_id
  location              = var.region
  connection_profile_id = "hybridshop-bigquery"
  display_name          = "hybridshop BigQuery"

  bigquery_profile {}
}

resource "google_datastream_stream" "this" {
  project       = var.project_id
  location      = var.region
  stream_id     = "hybridshop-rds-to-bigquery"
  display_name  = "hybridshop RDS to BigQuery"
  desired_state = "RUNNING"

  source_config {
    source_connection_profile = google_datastream_connection_profile.source.id

    postgresql_source_config {
      publication      = var.publication
      replication_slot = var.replication_slot

      include_objects {
        postgresql_schemas {
          schema = var.schema
          dynamic "postgresql_tables" {
            for_each = var.tables
            content {
              table = postgresql_tables.value
            }
          }
        }
      }
    }
  }

  destination_config {
    destination_connection_profile = google_datastream_connection_profile.destination.id

    bigquery_destination_config {
      data_freshness = var.data_freshness

      single_target_dataset {
        dataset_id = google_bigquery_dataset.analytics.id
      }

      merge {}
    }
  }

  backfill_all {}
}
