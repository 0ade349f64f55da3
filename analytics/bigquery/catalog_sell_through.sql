-- Items listed, items sold, sell-through rate and median hours from listing to sale, per
-- category. A product sells at most once, so "sold" = has an order.
SELECT
  p.category AS category,
  COUNT(*) AS items_listed,
  COUNTIF(o.id IS NOT NULL) AS items_sold,
  SAFE_DIVIDE(COUNTIF(o.id IS NOT NULL), COUNT(*)) AS sell_through_rate,
  AVG(p.price) AS average_list_price,
  APPROX_QUANTILES(TIMESTAMP_DIFF(o.purchased_at, p.created_at, SECOND) / 3600.0, 1000)[OFFSET(500)] AS median_hours_to_sale
FROM `${project}.${dataset}.public_products` AS p
LEFT JOIN (
  SELECT product_id, MIN(id) AS id, MIN(purchased_at) AS purchased_at
  FROM `${project}.${dataset}.public_orders`
  GROUP BY product_id
) AS o
  ON o.product_id = p.id
GROUP BY 1
