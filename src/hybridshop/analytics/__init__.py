"""Analytics: the Looker project compiled to BigQuery SQL and run locally on DuckDB."""
