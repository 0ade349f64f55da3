-- Pipeline health: rows per replicated table and freshness = now - the latest source commit
-- Datastream applied (datastream_metadata.source_timestamp is epoch milliseconds).
SELECT
  'public_orders' AS table_name,
  COUNT(*) AS row_count,
  TIMESTAMP_MILLIS(MAX(datastream_metadata.source_timestamp)) AS latest_source_time,
  TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), TIMESTAMP_MILLIS(MAX(datastream_metadata.source_timestamp)), SECOND) AS freshness_seconds
FROM `${project}.${dataset}.public_orders`
UNION ALL
SELECT
  'public_products' AS table_name,
  COUNT(*) AS row_count,
  TIMESTAMP_MILLIS(MAX(datastream_metadata.source_timestamp)) AS latest_source_time,
  TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), TIMESTAMP_MILLIS(MAX(datastream_metadata.source_timestamp)), SECOND) AS freshness_seconds
FROM `${project}.${dataset}.public_products`
