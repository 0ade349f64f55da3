- dashboard: pipeline_health
  title: Pipeline Health
  description: Is Datastream keeping up? Freshness, rows and changes per table.
  layout: newspaper
  preferred_viewer: dashboards-next
  refresh: 10 seconds

  filters:
  - name: date
    title: Change Time
    type: date_filter
    default_value: 24 hours
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
    explore: public_products
    field: public_products.category

  elements:
  - name: orders_freshness
    title: Orders Freshness (seconds)
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.freshness_seconds]
    note_text: Now minus the latest datastream_metadata.source_timestamp in public_orders.
    row: 0
    col: 0
    width: 6
    height: 3

  - name: products_freshness
    title: Products Freshness (seconds)
    type: single_value
    model: hybridshop
    explore: public_products
    fields: [public_products.freshness_seconds]
    note_text: Now minus the latest datastream_metadata.source_timestamp in public_products.
    row: 0
    col: 6
    width: 6
    height: 3

  - name: orders_rows
    title: Rows in public_orders
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.count]
    listen:
      category: public_products.category
    row: 0
    col: 12
    width: 6
    height: 3

  - name: products_rows
    title: Rows in public_products
    type: single_value
    model: hybridshop
    explore: public_products
    fields: [public_products.count]
    listen:
      category: public_products.category
    row: 0
    col: 18
    width: 6
    height: 3

  - name: order_changes_per_minute
    title: Order Changes per Minute
    type: looker_line
    model: hybridshop
    explore: public_orders
    fields: [public_orders.source_minute, public_orders.count]
    fill_fields: [public_orders.source_minute]
    sorts: [public_orders.source_minute asc]
    limit: 1500
    listen:
      date: public_orders.source_time
      category: public_products.category
    note_text: Rows by the minute of their latest change (merge mode keeps the latest image of each row).
    row: 3
    col: 0
    width: 12
    height: 8

  - name: product_changes_per_minute
    title: Product Changes per Minute
    type: looker_line
    model: hybridshop
    explore: public_products
    fields: [public_products.source_minute, public_products.count]
    fill_fields: [public_products.source_minute]
    sorts: [public_products.source_minute asc]
    limit: 1500
    listen:
      date: public_products.source_time
      category: public_products.category
    row: 3
    col: 12
    width: 12
    height: 8

  - name: latest_changes
    title: Products by Category, with their Latest Change
    type: looker_grid
    model: hybridshop
    explore: public_products
    fields: [public_products.category, public_products.count, public_products.latest_change]
    sorts: [public_products.category asc]
    limit: 50
    listen:
      category: public_products.category
    row: 11
    col: 0
    width: 12
    height: 4

  - name: about
    type: text
    title_text: Freshness
    body_text: |
      Freshness is now minus the newest source commit time (Datastream's
      datastream_metadata.source_timestamp, epoch milliseconds) in each table. In BigQuery it
      also includes the table's max_staleness; locally, the replicator's commit interval.
    row: 11
    col: 12
    width: 12
    height: 4
