"""Local Datastream: PostgreSQL logical replication (pgoutput) -> DuckDB in BigQuery layout."""
