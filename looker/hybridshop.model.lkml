# Orders and the catalog, as Datastream replicates them from RDS into BigQuery.
connection: "@{connection_name}"

include: "/views/*.view.lkml"
include: "/dashboards/*.dashboard.lookml"

week_start_day: monday

# One row per order; each order is for one product (many orders -> one product).
explore: public_orders {
  label: "Orders"
  join: public_products {
    type: left_outer
    relationship: many_to_one
    sql_on: ${public_orders.product_id} = ${public_products.id} ;;
  }
}

# One row per listing; a listing has its orders (one product -> many orders), so sums and
# averages over products use symmetric aggregates when orders are joined.
explore: public_products {
  label: "Catalog"
  join: public_orders {
    type: left_outer
    relationship: one_to_many
    sql_on: ${public_products.id} = ${public_orders.product_id} ;;
  }
}
