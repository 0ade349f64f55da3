"""A small warehouse whose every dashboard number can be computed by hand.

Products (listed at, price, category) and the orders of five of them::

    id name                          category price  listed            sold at           hours
    1  Lamp                          home    20.00  2024-01-01 10:00  2024-01-01 14:00   4
    2  Chair                         home    50.00  2024-01-02 12:00  2024-01-04 12:00  48
    3  Book                          books   10.00  2024-01-03 09:00  2024-01-03 11:00   2
    4  Pen                           books    5.00  2024-01-05 15:00  (unsold)
    5  Guitar                        music  300.00  2024-01-08 08:00  2024-01-10 20:00  60
    6  <img src=x onerror=alert(1)>  music   30.00  2024-01-09 00:00  2024-01-09 06:00   6

Orders 1..5 are for products 1, 2, 3, 5, 6 in that order, at the product's price, channel
``api`` except order 4 (``web``). Source timestamps (Datastream's commit time): products at
2024-01-10 12:00 + id minutes, orders at 2024-01-10 21:00 + (id // 2) minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from hybridshop.analytics.lookml import Project, load_project
from hybridshop.analytics.warehouse import create_tables, insert_orders, insert_products

XSS = "<img src=x onerror=alert(1)>"
PRODUCTS = [
    (1, "Lamp", "home", Decimal("20.00"), datetime(2024, 1, 1, 10), False),
    (2, "Chair", "home", Decimal("50.00"), datetime(2024, 1, 2, 12), False),
    (3, "Book", "books", Decimal("10.00"), datetime(2024, 1, 3, 9), False),
    (4, "Pen", "books", Decimal("5.00"), datetime(2024, 1, 5, 15), True),
    (5, "Guitar", "music", Decimal("300.00"), datetime(2024, 1, 8, 8), False),
    (6, XSS, "music", Decimal("30.00"), datetime(2024, 1, 9, 0), False),
]
ORDERS = [
    (1, 1, Decimal("20.00"), datetime(2024, 1, 1, 14), "api"),
    (2, 2, Decimal("50.00"), datetime(2024, 1, 4, 12), "api"),
    (3, 3, Decimal("10.00"), datetime(2024, 1, 3, 11), "api"),
    (4, 5, Decimal("300.00"), datetime(2024, 1, 10, 20), "web"),
    (5, 6, Decimal("30.00"), datetime(2024, 1, 9, 6), "api"),
]
PRODUCT_SOURCE = {pid: datetime(2024, 1, 10, 12, pid) for pid, *_ in PRODUCTS}
ORDER_SOURCE = {oid: datetime(2024, 1, 10, 21, oid // 2) for oid, *_ in ORDERS}
# the dashboards' date filter, set to cover the whole dataset
ALL_DATES = {"date": "2024-01-01 to 2024-02-01"}


def fill_known(con: Any) -> None:
    create_tables(con)
    insert_products(con, [(*p, PRODUCT_SOURCE[p[0]]) for p in PRODUCTS])
    insert_orders(con, [(*o, ORDER_SOURCE[o[0]]) for o in ORDERS])


@pytest.fixture(scope="session")
def project() -> Project:
    return load_project()


@pytest.fixture(scope="session")
def known_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("warehouse") / "known.duckdb"
    con = duckdb.connect(str(path))
    fill_known(con)
    con.close()
    return str(path)


@pytest.fixture
def known(known_db: str) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(known_db, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()
