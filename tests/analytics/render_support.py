"""Test support for the dashboard renderer: a real DuckDB warehouse in Datastream's layout,
a Looker project with one dashboard of every element type, and the server on loopback.

The warehouse is written the way the replicator writes it (``public_products`` and
``public_orders`` with a ``datastream_metadata`` STRUCT, plus ``_datastream_state``) and
published the way it publishes the read copy: a new file renamed over the old one.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
LOOKER = REPO / "looker"
XSS = "<img src=x onerror=alert(1)>"
# noon, 20 days ago: inside every dashboard's default date range, whatever day the tests run
T0 = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0) - dt.timedelta(
    days=20
)


@dataclass
class Product:
    id: int
    name: str
    category: str
    price: Decimal
    created_at: dt.datetime
    available: bool = True


@dataclass
class Order:
    id: int
    product_id: int
    price: Decimal
    purchased_at: dt.datetime
    channel: str = "web"


@dataclass
class Shop:
    """The source rows the fixture warehouse holds (what the tests compute by hand from)."""

    products: list[Product] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)

    def buy(self, product_id: int, at: dt.datetime) -> Order:
        product = next(p for p in self.products if p.id == product_id)
        product.available = False
        order = Order(len(self.orders) + 1, product_id, product.price, at)
        self.orders.append(order)
        return order

    def revenue(self, category: str | None = None) -> Decimal:
        by_id = {p.id: p for p in self.products}
        return sum(
            (o.price for o in self.orders if category in (None, by_id[o.product_id].category)),
            Decimal(0),
        )


def demo_shop() -> Shop:
    """12 products in 3 categories (one with an XSS name), 7 orders over 4 days."""
    shop = Shop()
    names = [
        ("Ceramic vase", "home", "34.00"),
        ("Cast iron teapot", "kitchen", "58.50"),
        ("Wool scarf", "fashion", "25.00"),
        (XSS, "home", "99.00"),
        ("Oak cutting board", "kitchen", "39.90"),
        ("Linen apron", "kitchen", "22.00"),
        ("Silk tie", "fashion", "45.00"),
        ("Brass lamp", "home", "120.00"),
        ("Copper pan", "kitchen", "75.00"),
        ("Leather belt", "fashion", "30.00"),
        ("Glass carafe", "kitchen", "18.00"),
        ("Cotton throw", "home", "60.00"),
    ]
    for i, (name, cat, price) in enumerate(names, start=1):
        shop.products.append(
            Product(i, name, cat, Decimal(price), T0 - dt.timedelta(days=10, hours=i))
        )
    for pid, day, hour in [
        (4, 0, 9),
        (2, 0, 15),
        (3, 1, 10),
        (8, 1, 18),
        (5, 2, 11),
        (9, 3, 8),
        (7, 3, 20),
    ]:
        shop.buy(pid, T0 + dt.timedelta(days=day, hours=hour - 12))
    return shop


def _ms(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


def write_warehouse(path: Path, shop: Shop, *, changes_applied: int | None = None) -> None:
    """Write ``shop`` as the replicator would, to a temp file renamed over ``path``."""
    tmp = path.with_name(path.name + f".{uuid.uuid4().hex[:6]}.tmp")
    con = duckdb.connect(str(tmp))
    con.execute("SET TimeZone = 'UTC'")
    meta = "STRUCT(uuid VARCHAR, source_timestamp BIGINT)"
    con.execute(
        "CREATE TABLE public_products (id BIGINT, name VARCHAR, description VARCHAR, "
        "category VARCHAR, price DECIMAL(10,2), currency VARCHAR, image_url VARCHAR, "
        f"available BOOLEAN, created_at TIMESTAMP, updated_at TIMESTAMP, datastream_metadata {meta})"
    )
    con.execute(
        "CREATE TABLE public_orders (id BIGINT, product_id BIGINT, price DECIMAL(10,2), "
        "currency VARCHAR, purchased_at TIMESTAMP, buyer_ref VARCHAR, channel VARCHAR, "
        "idempotency_key VARCHAR, idempotency_caller VARCHAR, request_fingerprint VARCHAR, "
        f"datastream_metadata {meta})"
    )
    sold_at = {o.product_id: o.purchased_at for o in shop.orders}
    for p in shop.products:
        changed = sold_at.get(p.id, p.created_at)
        con.execute(
            "INSERT INTO public_products VALUES (?, ?, '', ?, ?, 'EUR', NULL, ?, ?, ?, "
            "{'uuid': ?, 'source_timestamp': ?})",
            [
                p.id,
                p.name,
                p.category,
                p.price,
                p.available,
                p.created_at.replace(tzinfo=None),
                changed.replace(tzinfo=None),
                str(uuid.uuid4()),
                _ms(changed),
            ],
        )
    for o in shop.orders:
        con.execute(
            "INSERT INTO public_orders VALUES (?, ?, ?, 'EUR', ?, NULL, ?, NULL, '', NULL, "
            "{'uuid': ?, 'source_timestamp': ?})",
            [
                o.id,
                o.product_id,
                o.price,
                o.purchased_at.replace(tzinfo=None),
                o.channel,
                str(uuid.uuid4()),
                _ms(o.purchased_at),
            ],
        )
    applied = (
        changes_applied
        if changes_applied is not None
        else len(shop.products) + 2 * len(shop.orders)
    )
    last = max([_ms(o.purchased_at) for o in shop.orders] or [0])
    con.execute(
        "CREATE TABLE _datastream_state (slot VARCHAR PRIMARY KEY, publication VARCHAR, mode VARCHAR, "
        "layout VARCHAR, lsn UBIGINT, backfill_complete BOOLEAN, last_commit_ts_ms BIGINT, "
        "last_heartbeat_ts_ms BIGINT, applied_at TIMESTAMP, changes_applied BIGINT)"
    )
    con.execute(
        "INSERT INTO _datastream_state VALUES ('hybridshop', 'hybridshop_pub', 'merge', 'single', "
        "1, true, ?, ?, now()::TIMESTAMP, ?)",
        [last, last, applied],
    )
    con.close()
    os.replace(tmp, path)


# --- a Looker project with one dashboard of every element type ---------------------------
RENDER_DASHBOARD = """\
- dashboard: render_check
  title: Render check
  description: One tile of every element type the local renderer draws.
  layout: newspaper
  refresh: 1 hour
  filters:
  - name: date
    title: Date
    type: field_filter
    default_value: ''
    allow_multiple_values: true
    required: false
    model: hybridshop
    explore: public_orders
    field: public_orders.purchased_date
  - name: category
    title: Category
    type: field_filter
    default_value: ''
    allow_multiple_values: true
    required: false
    model: hybridshop
    explore: public_orders
    field: public_products.category
  elements:
  - name: intro
    type: text
    title_text: Render check
    subtitle_text: Every tile type
    body_text: "**Bold** text, `code`, and a list:\\n- one\\n- two <b>not bold</b>"
    row: 0
    col: 0
    width: 8
    height: 4
  - name: revenue
    title: Revenue
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.revenue]
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 0
    col: 8
    width: 8
    height: 4
  - name: orders_count
    title: Orders
    type: single_value
    model: hybridshop
    explore: public_orders
    fields: [public_orders.count]
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 0
    col: 16
    width: 8
    height: 4
  - name: revenue_by_day
    title: Revenue by day
    type: looker_line
    model: hybridshop
    explore: public_orders
    fields: [public_orders.purchased_date, public_orders.revenue]
    sorts: [public_orders.purchased_date]
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 4
    col: 0
    width: 12
    height: 6
  - name: revenue_by_category
    title: Revenue by category
    type: looker_column
    model: hybridshop
    explore: public_orders
    fields: [public_products.category, public_orders.revenue]
    sorts: [public_orders.revenue desc]
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 4
    col: 12
    width: 12
    height: 6
  - name: top_products
    title: Top products
    type: looker_bar
    model: hybridshop
    explore: public_orders
    fields: [public_products.name, public_orders.revenue]
    sorts: [public_orders.revenue desc]
    limit: 10
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 10
    col: 0
    width: 8
    height: 6
  - name: share
    title: Share of revenue
    type: looker_pie
    model: hybridshop
    explore: public_orders
    fields: [public_products.category, public_orders.revenue]
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 10
    col: 8
    width: 8
    height: 6
  - name: orders_area
    title: Orders by day
    type: looker_area
    model: hybridshop
    explore: public_orders
    fields: [public_orders.purchased_date, public_orders.count]
    sorts: [public_orders.purchased_date]
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 10
    col: 16
    width: 8
    height: 6
  - name: prices
    title: Price by product
    type: looker_scatter
    model: hybridshop
    explore: public_orders
    fields: [public_orders.price, public_orders.count]
    row: 16
    col: 0
    width: 8
    height: 6
  - name: orders_table
    title: Orders
    type: looker_grid
    model: hybridshop
    explore: public_orders
    fields: [public_orders.id, public_products.name, public_products.category, public_orders.revenue]
    sorts: [public_orders.id]
    listen: {date: public_orders.purchased_date, category: public_products.category}
    row: 16
    col: 8
    width: 16
    height: 6
"""


def make_project(root: Path, extra: Iterable[tuple[str, str]] = ()) -> Path:
    """A copy of the repository's Looker project plus the render-check dashboard."""
    shutil.copytree(LOOKER, root)
    (root / "dashboards").mkdir(exist_ok=True)
    (root / "dashboards" / "render_check.dashboard.lookml").write_text(RENDER_DASHBOARD)
    for name, text in extra:
        (root / "dashboards" / name).write_text(text)
    return root
