# Orders and the catalog, as Datastream replicates them from RDS into BigQuery.
connection: "@{connection_name}"

include: "/views/*.view.lkml"
include: "/dashboards/*.dashboard.lookml"

week_start_day: monday

# Rebuilds the aggregate tables when Datastream has written a change: the latest
# source_timestamp (epoch ms) of either table moves. Locally an aggregate is materialized
# once per warehouse read copy instead (src/hybridshop/analytics/lookml/aggregates.py).
datagroup: datastream_change {
  sql_trigger: SELECT GREATEST(
      (SELECT MAX(datastream_metadata.source_timestamp) FROM `@{gcp_project}.@{bigquery_dataset}.public_orders`),
      (SELECT MAX(datastream_metadata.source_timestamp) FROM `@{gcp_project}.@{bigquery_dataset}.public_products`)) ;;
  max_cache_age: "1 hour"
}

# One row per order; each order is for one product (many orders -> one product).
explore: public_orders {
  label: "Orders"
  join: public_products {
    type: left_outer
    relationship: many_to_one
    sql_on: ${public_orders.product_id} = ${public_products.id} ;;
  }

  # Aggregate awareness: orders and revenue per hour and category (about 24 x 8 rows a day)
  # answer the Sales tiles (totals, per day, per week, per category, by hour of day) and the
  # orders row count; count and sum re-aggregate, the join adds and drops no order.
  aggregate_table: sales_hourly_by_category {
    query: {
      dimensions: [public_orders.purchased_hour, public_products.category]
      measures: [public_orders.count, public_orders.revenue]
      timezone: "UTC"
    }
    materialization: {
      datagroup_trigger: datastream_change
    }
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

  # Listings per day and category: items listed, new listings per day, the products row
  # count (a count of the base view, no join).
  aggregate_table: listings_daily_by_category {
    query: {
      dimensions: [public_products.created_date, public_products.category]
      measures: [public_products.count]
      timezone: "UTC"
    }
    materialization: {
      datagroup_trigger: datastream_change
    }
  }
}
