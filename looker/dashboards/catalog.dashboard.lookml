- dashboard: catalog
  title: Catalog
  description: What is listed, what sells, and how fast.
  layout: newspaper
  preferred_viewer: dashboards-next
  refresh: 30 seconds

  filters:
  - name: date
    title: Listing Date
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
    explore: public_products
    field: public_products.category

  elements:
  - name: items_listed
    title: Items Listed
    type: single_value
    model: hybridshop
    explore: public_products
    fields: [public_products.count]
    listen:
      date: public_products.created_date
      category: public_products.category
    row: 0
    col: 0
    width: 6
    height: 3

  - name: items_sold
    title: Items Sold
    type: single_value
    model: hybridshop
    explore: public_products
    fields: [public_orders.items_sold]
    listen:
      date: public_products.created_date
      category: public_products.category
    note_text: Listings in the period that have an order.
    row: 0
    col: 6
    width: 6
    height: 3

  - name: sell_through_rate
    title: Sell-through Rate
    type: single_value
    model: hybridshop
    explore: public_products
    fields: [public_products.sell_through_rate]
    listen:
      date: public_products.created_date
      category: public_products.category
    note_text: Items sold / items listed.
    row: 0
    col: 12
    width: 6
    height: 3

  - name: median_hours_to_sale
    title: Median Hours from Listing to Sale
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.median_hours_to_sale]
    listen:
      date: public_products.created_date
      category: public_products.category
    row: 0
    col: 18
    width: 6
    height: 3

  - name: listed_vs_sold
    title: Listed vs Sold by Category
    type: looker_column
    model: hybridshop
    explore: public_products
    fields: [public_products.category, public_products.count, public_orders.items_sold]
    sorts: [public_products.count desc]
    limit: 50
    listen:
      date: public_products.created_date
      category: public_products.category
    row: 3
    col: 0
    width: 12
    height: 8

  - name: new_listings
    title: New Listings per Day
    type: looker_area
    model: hybridshop
    explore: public_products
    fields: [public_products.created_date, public_products.count]
    fill_fields: [public_products.created_date]
    sorts: [public_products.created_date asc]
    limit: 500
    listen:
      date: public_products.created_date
      category: public_products.category
    row: 3
    col: 12
    width: 12
    height: 8

  - name: price_distribution
    title: Price Distribution by Category
    type: looker_column
    model: hybridshop
    explore: public_products
    fields: [public_products.price_tier, public_products.category, public_products.count]
    pivots: [public_products.category]
    sorts: [public_products.price_tier asc]
    limit: 50
    stacking: normal
    listen:
      date: public_products.created_date
      category: public_products.category
    row: 11
    col: 0
    width: 14
    height: 8

  - name: price_vs_time_to_sale
    title: Average Order Value vs Median Hours to Sale, per Category
    type: looker_scatter
    model: hybridshop
    explore: public_orders
    fields: [public_products.category, public_orders.average_order_value, public_orders.median_hours_to_sale]
    sorts: [public_orders.average_order_value desc]
    limit: 50
    listen:
      date: public_products.created_date
      category: public_products.category
    row: 11
    col: 14
    width: 10
    height: 8

  - name: unsold_listings
    title: Oldest Unsold Listings
    type: table
    model: hybridshop
    explore: public_products
    fields: [public_products.name, public_products.category, public_products.price, public_products.created_date]
    filters:
      public_orders.id: "NULL"
    sorts: [public_products.created_date asc, public_products.name asc]
    limit: 20
    listen:
      date: public_products.created_date
      category: public_products.category
    row: 19
    col: 0
    width: 24
    height: 8
