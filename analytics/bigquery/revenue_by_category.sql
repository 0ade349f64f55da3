-- Revenue, orders and average order value per product category, all time.
SELECT
  p.category AS category,
  COUNT(*) AS orders,
  COALESCE(SUM(o.price), 0) AS revenue,
  AVG(o.price) AS average_order_value
FROM `${project}.${dataset}.public_orders` AS o
LEFT JOIN `${project}.${dataset}.public_products` AS p
  ON o.product_id = p.id
GROUP BY 1
