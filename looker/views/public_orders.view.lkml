# public.orders as Datastream writes it (merge mode: one row per live order; a deleted order
# is removed from the table, so there is no is_deleted column to exclude).
view: public_orders {
  sql_table_name: `@{gcp_project}.@{bigquery_dataset}.public_orders` ;;

  dimension: id {
    primary_key: yes
    type: number
    sql: ${TABLE}.id ;;
    value_format_name: id
  }

  dimension: product_id {
    type: number
    sql: ${TABLE}.product_id ;;
    value_format_name: id
    hidden: yes
  }

  dimension: price {
    label: "Order Price"
    type: number
    sql: ${TABLE}.price ;;
    value_format_name: eur
  }

  dimension: currency {
    type: string
    sql: ${TABLE}.currency ;;
  }

  dimension: channel {
    type: string
    sql: ${TABLE}.channel ;;
  }

  dimension_group: purchased {
    type: time
    timeframes: [raw, time, minute, hour, date, week, month, quarter, year, hour_of_day, day_of_week, day_of_week_index]
    sql: ${TABLE}.purchased_at ;;
  }

  # When the order row last changed in PostgreSQL: Datastream's source_timestamp is INT64
  # epoch milliseconds (not seconds, so not datatype: epoch).
  dimension_group: source {
    label: "Replicated"
    type: time
    timeframes: [raw, time, minute, hour, date]
    sql: CAST(TIMESTAMP_MILLIS(${TABLE}.datastream_metadata.source_timestamp) AS TIMESTAMP) ;;
  }

  dimension: hours_to_sale {
    label: "Hours from Listing to Sale"
    type: number
    sql: TIMESTAMP_DIFF(${purchased_raw}, ${public_products.created_raw}, SECOND) / 3600.0 ;;
    value_format_name: decimal_1
  }

  measure: count {
    label: "Orders"
    type: count
    drill_fields: [id, purchased_time, price]
  }

  measure: revenue {
    type: sum
    sql: ${price} ;;
    value_format_name: eur
  }

  measure: average_order_value {
    label: "Average Order Value"
    type: average
    sql: ${price} ;;
    value_format_name: eur
  }

  # A product sells at most once (orders_product_sold_once), so items sold = orders; a count
  # (not count_distinct of product_id) lets the counting skip DISTINCT where no join repeats
  # orders.
  measure: items_sold {
    label: "Items Sold"
    type: count
  }

  # BigQuery has no exact MEDIAN aggregate: APPROX_QUANTILES(x, 1000)[OFFSET(500)] on BigQuery,
  # the exact lower median (QUANTILE_DISC 0.5) locally.
  measure: median_hours_to_sale {
    label: "Median Hours Listing to Sale"
    type: median
    sql: ${hours_to_sale} ;;
    value_format_name: decimal_1
  }

  measure: latest_change {
    label: "Latest Change"
    type: max
    sql: ${source_raw} ;;
  }

  measure: freshness_seconds {
    label: "Orders Freshness (s)"
    description: "Now minus the latest source_timestamp in the table."
    type: number
    sql: TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), ${latest_change}, SECOND) ;;
    value_format_name: decimal_0
  }
}
