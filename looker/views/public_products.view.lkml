# public.products as Datastream writes it (merge mode: one row per live listing; a deleted
# product is removed from the table, so there is no is_deleted column to exclude).
view: public_products {
  sql_table_name: `@{gcp_project}.@{bigquery_dataset}.public_products` ;;

  dimension: id {
    primary_key: yes
    type: number
    sql: ${TABLE}.id ;;
    value_format_name: id
  }

  dimension: name {
    label: "Product"
    type: string
    sql: ${TABLE}.name ;;
  }

  dimension: category {
    type: string
    sql: ${TABLE}.category ;;
  }

  dimension: price {
    label: "List Price"
    type: number
    sql: ${TABLE}.price ;;
    value_format_name: eur
  }

  dimension: price_tier {
    label: "Price Tier"
    type: tier
    tiers: [10, 25, 50, 100, 250]
    style: integer
    sql: ${price} ;;
  }

  dimension: currency {
    type: string
    sql: ${TABLE}.currency ;;
  }

  dimension: available {
    type: yesno
    sql: ${TABLE}.available ;;
  }

  dimension_group: created {
    label: "Listed"
    type: time
    timeframes: [raw, time, hour, date, week, month, quarter, year, day_of_week]
    sql: ${TABLE}.created_at ;;
  }

  dimension_group: updated {
    type: time
    timeframes: [raw, time, date]
    sql: ${TABLE}.updated_at ;;
  }

  dimension_group: source {
    label: "Replicated"
    type: time
    timeframes: [raw, time, minute, hour, date]
    sql: CAST(TIMESTAMP_MILLIS(${TABLE}.datastream_metadata.source_timestamp) AS TIMESTAMP) ;;
  }

  measure: count {
    label: "Items Listed"
    type: count
    drill_fields: [id, name, category, price]
  }

  measure: listed_value {
    label: "Listed Value"
    type: sum
    sql: ${price} ;;
    value_format_name: eur
  }

  measure: average_price {
    label: "Average List Price"
    type: average
    sql: ${price} ;;
    value_format_name: eur
  }

  measure: available_count {
    label: "Items Available"
    type: count
    filters: [available: "yes"]
  }

  measure: sell_through_rate {
    label: "Sell-through Rate"
    description: "Items sold / items listed."
    type: number
    sql: 1.0 * ${public_orders.items_sold} / NULLIF(${count}, 0) ;;
    value_format_name: percent_1
  }

  measure: latest_change {
    label: "Latest Change"
    type: max
    sql: ${source_raw} ;;
  }

  measure: freshness_seconds {
    label: "Products Freshness (s)"
    description: "Now minus the latest source_timestamp in the table."
    type: number
    sql: TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), ${latest_change}, SECOND) ;;
    value_format_name: decimal_0
  }
}
