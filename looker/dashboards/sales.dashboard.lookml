- dashboard: sales
  title: Sales
  description: Revenue, orders and average order value from the orders Datastream replicates.
  layout: newspaper
  preferred_viewer: dashboards-next
  refresh: 30 seconds

  filters:
  - name: date
    title: Purchase Date
    type: date_filter
    default_value: 180 days
    allow_multiple_values: true
    required: false
    ui_config:
      type: advanced
      display: popover
  - name: category
    title: Category
    type: field_filter
    default_value: ""
    allow_multiple_values: true
    required: false
    ui_config:
      type: tag_list
      display: popover
    model: hybridshop
    explore: public_orders
    field: public_products.category

  elements:
  - name: revenue
    title: Revenue
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.revenue]
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    note_text: Sum of order prices (EUR).
    row: 0
    col: 0
    width: 8
    height: 3

  - name: orders
    title: Orders
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.count]
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    row: 0
    col: 8
    width: 8
    height: 3

  - name: average_order_value
    title: Average Order Value
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.average_order_value]
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    row: 0
    col: 16
    width: 8
    height: 3

  - name: revenue_over_time
    title: Revenue and Orders per Day
    type: looker_line
    model: hybridshop
    explore: public_orders
    fields: [public_orders.purchased_date, public_orders.revenue, public_orders.count]
    fill_fields: [public_orders.purchased_date]
    sorts: [public_orders.purchased_date asc]
    limit: 500
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    y_axes:
    - label: Revenue
      series: [{id: public_orders.revenue}]
    - label: Orders
      orientation: right
      series: [{id: public_orders.count}]
    row: 3
    col: 0
    width: 16
    height: 8

  - name: revenue_by_category
    title: Revenue by Category
    type: looker_pie
    model: hybridshop
    explore: public_orders
    fields: [public_products.category, public_orders.revenue]
    sorts: [public_orders.revenue desc]
    limit: 50
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    value_labels: legend
    row: 3
    col: 16
    width: 8
    height: 8

  - name: weekly_revenue_by_category
    title: Weekly Revenue by Category
    type: looker_column
    model: hybridshop
    explore: public_orders
    fields: [public_orders.purchased_week, public_products.category, public_orders.revenue]
    pivots: [public_products.category]
    fill_fields: [public_orders.purchased_week]
    sorts: [public_orders.purchased_week asc]
    limit: 500
    stacking: normal
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    row: 11
    col: 0
    width: 12
    height: 8

  - name: orders_by_hour
    title: Orders by Hour of Day (UTC)
    type: looker_bar
    model: hybridshop
    explore: public_orders
    fields: [public_orders.purchased_hour_of_day, public_orders.count]
    sorts: [public_orders.purchased_hour_of_day asc]
    limit: 24
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    row: 11
    col: 12
    width: 12
    height: 8

  - name: top_products
    title: Top Products by Revenue
    type: looker_grid
    model: hybridshop
    explore: public_orders
    fields: [public_products.name, public_products.category, public_orders.revenue, public_orders.count]
    sorts: [public_orders.revenue desc, public_products.name asc]
    limit: 10
    listen:
      date: public_orders.purchased_date
      category: public_products.category
    row: 19
    col: 0
    width: 16
    height: 8

  - name: about
    type: text
    title_text: About these numbers
    body_text: |
      Orders as Datastream replicates them from the shop's PostgreSQL (RDS) into BigQuery;
      locally, from the DuckDB warehouse `hybridshop up` keeps in the same layout.
      Times are UTC. Revenue is the sum of order prices in EUR.
    row: 19
    col: 16
    width: 8
    height: 8
