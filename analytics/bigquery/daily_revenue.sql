-- Revenue and orders per day and currency (example view; the analytics views live in this
-- folder, one file each, deployed by terraform/modules/gcp_analytics).
SELECT
  DATE(o.purchased_at) AS day,
  o.currency,
  COUNT(*) AS orders,
  SUM(o.price) AS revenue
FROM `${project}.${dataset}.public_orders` AS o
GROUP BY day, o.currency
