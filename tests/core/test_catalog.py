"""Catalog operations against a real PostgreSQL."""

from __future__ import annotations

import threading
from decimal import Decimal

import psycopg2
import pytest

from hybridshop.core import catalog
from hybridshop.core.errors import AlreadySold, IdempotencyConflict, NotFound
from hybridshop.core.models import ListingQuery, PurchaseRequest
from hybridshop.core.validation import parse_new_product
from hybridshop.db.seed import generate_products, insert_products


def _add(conn: psycopg2.extensions.connection, name: str, **extra: object) -> int:
    return catalog.add_product(conn, parse_new_product({"name": name, "price": "9.99", **extra})).id


def test_add_and_get(conn: psycopg2.extensions.connection) -> None:
    product_id = _add(conn, "Oak Chair", category="home-garden", description="Solid oak.")
    product = catalog.get_product(conn, product_id)
    assert product.name == "Oak Chair"
    assert product.price == Decimal("9.99")
    assert product.available
    assert product.to_dict()["price"] == "9.99"
    assert product.to_dict()["created_at"].endswith("Z")


def test_listing_pages_are_stable_and_complete(conn: psycopg2.extensions.connection) -> None:
    insert_products(conn, generate_products(45, seed=1))
    seen: list[int] = []
    after = None
    while True:
        page = catalog.list_products(conn, ListingQuery(limit=10, after_id=after))
        seen += [p.id for p in page.items]
        if page.next_cursor is None:
            break
        from hybridshop.core.validation import parse_listing_query

        after = parse_listing_query({"cursor": page.next_cursor}).after_id
    assert len(seen) == 45 == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_listing_filters(conn: psycopg2.extensions.connection) -> None:
    _add(conn, "Blue 100% Cotton_Shirt", category="clothing")
    _add(conn, "Red Kite", category="toys")
    sold = _add(conn, "Green Kite", category="toys")
    catalog.purchase(conn, sold, PurchaseRequest())
    toys = catalog.list_products(conn, ListingQuery(categories=("toys",)))
    assert [p.name for p in toys.items] == ["Red Kite"]
    with_sold = catalog.list_products(conn, ListingQuery(categories=("toys",), include_sold=True))
    assert {p.name for p in with_sold.items} == {"Red Kite", "Green Kite"}
    # LIKE wildcards in the search text are literal characters
    assert [p.name for p in catalog.list_products(conn, ListingQuery(search="100%")).items] == [
        "Blue 100% Cotton_Shirt"
    ]
    assert catalog.list_products(conn, ListingQuery(search="o_s")).items == []
    cats = {c.name: (c.available, c.total) for c in catalog.list_categories(conn)}
    assert cats == {"clothing": (1, 1), "toys": (1, 2)}


def test_purchase_marks_sold_and_records_order(conn: psycopg2.extensions.connection) -> None:
    product_id = _add(conn, "Lamp")
    order, created = catalog.purchase(
        conn, product_id, PurchaseRequest(buyer_ref="s1", channel="web")
    )
    assert created
    assert (order.product_id, order.product_name, order.price, order.channel) == (
        product_id,
        "Lamp",
        Decimal("9.99"),
        "web",
    )
    assert not catalog.get_product(conn, product_id).available
    with pytest.raises(AlreadySold):
        catalog.purchase(conn, product_id, PurchaseRequest())
    with pytest.raises(NotFound):
        catalog.purchase(conn, 999_999, PurchaseRequest())
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        assert cur.fetchone()[0] == 1


def test_idempotent_purchase(conn: psycopg2.extensions.connection) -> None:
    first = _add(conn, "Vase")
    other = _add(conn, "Mug")
    order, created = catalog.purchase(conn, first, PurchaseRequest(idempotency_key="k1"))
    again, created_again = catalog.purchase(conn, first, PurchaseRequest(idempotency_key="k1"))
    assert created and not created_again
    assert again == order
    with pytest.raises(IdempotencyConflict):
        catalog.purchase(conn, other, PurchaseRequest(idempotency_key="k1"))
    assert catalog.get_product(conn, other).available


def test_concurrent_buyers_one_winner(
    database_url: str, conn: psycopg2.extensions.connection
) -> None:
    product_id = _add(conn, "Last Ticket")
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def buyer() -> None:
        c = psycopg2.connect(database_url)
        try:
            barrier.wait()
            catalog.purchase(c, product_id, PurchaseRequest())
            outcomes.append("sold")
        except AlreadySold:
            outcomes.append("already_sold")
        finally:
            c.close()

    threads = [threading.Thread(target=buyer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_sold"] * 19 + ["sold"]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders WHERE product_id = %s", (product_id,))
        assert cur.fetchone()[0] == 1


def test_concurrent_retries_with_one_key_buy_once(
    database_url: str, conn: psycopg2.extensions.connection
) -> None:
    product_id = _add(conn, "Retry Me")
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(10)

    def retry() -> None:
        c = psycopg2.connect(database_url)
        try:
            barrier.wait()
            order, created = catalog.purchase(
                c, product_id, PurchaseRequest(idempotency_key="same")
            )
            results.append((order.id, created))
        finally:
            c.close()

    threads = [threading.Thread(target=retry) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({order_id for order_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_database_constraints_guard_direct_writes(conn: psycopg2.extensions.connection) -> None:
    """Rules live in the database too, not only in Python."""
    bad_rows = [
        "INSERT INTO products (name, price) VALUES ('', 1)",
        "INSERT INTO products (name, price) VALUES (' padded ', 1)",
        "INSERT INTO products (name, price) VALUES ('x', 0)",
        "INSERT INTO products (name, price) VALUES ('x', 'NaN')",
        "INSERT INTO products (name, price) VALUES ('x', 'Infinity')",
        "INSERT INTO products (name, price, currency) VALUES ('x', 1, 'eu')",
    ]
    for statement in bad_rows:
        with pytest.raises((psycopg2.IntegrityError, psycopg2.DataError)), conn.cursor() as cur:
            cur.execute(statement)
        conn.rollback()
    product_id = _add(conn, "Once")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO orders (product_id, price, currency) VALUES (%s, 1, 'EUR')", (product_id,)
        )
        with pytest.raises(psycopg2.IntegrityError):
            cur.execute(
                "INSERT INTO orders (product_id, price, currency) VALUES (%s, 1, 'EUR')",
                (product_id,),
            )
    conn.rollback()
