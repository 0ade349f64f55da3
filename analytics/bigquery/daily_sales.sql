-- Orders, revenue and average order value per purchase day (UTC) and category.
-- Same numbers as the Looker Sales dashboard (public_orders explore, purchased_date).
SELECT
  DATE(o.purchased_at) AS purchase_date,
  p.category AS category,
  COUNT(*) AS orders,
  COALESCE(SUM(o.price), 0) AS revenue,
  AVG(o.price) AS average_order_value
FROM `${project}.${dataset}.public_orders` AS o
LEFT JOIN `${project}.${dataset}.public_products` AS p
  ON o.product_id = p.id
GROUP BY 1, 2
