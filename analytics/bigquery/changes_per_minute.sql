-- Rows per table by the minute (UTC) of their latest source commit: how fast changes arrive.
SELECT
  'public_orders' AS table_name,
  TIMESTAMP_TRUNC(TIMESTAMP_MILLIS(datastream_metadata.source_timestamp), MINUTE) AS change_minute,
  COUNT(*) AS changes
FROM `${project}.${dataset}.public_orders`
GROUP BY 1, 2
UNION ALL
SELECT
  'public_products' AS table_name,
  TIMESTAMP_TRUNC(TIMESTAMP_MILLIS(datastream_metadata.source_timestamp), MINUTE) AS change_minute,
  COUNT(*) AS changes
FROM `${project}.${dataset}.public_products`
GROUP BY 1, 2
