"""History writes in core: explicit timestamps and the bulk forms, with every purchase rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg2
import pytest

from hybridshop.core import catalog
from hybridshop.core.errors import AlreadySold, IdempotencyConflict, NotFound
from hybridshop.core.models import NewProduct, PurchaseRequest

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _new(name: str, price: str = "10.00") -> NewProduct:
    return NewProduct(name=name, price=Decimal(price), category="books")


def test_explicit_times_are_kept(conn: psycopg2.extensions.connection) -> None:
    product = catalog.add_product(conn, _new("Atlas"), at=T0)
    assert product.created_at == product.updated_at == T0
    order, created = catalog.purchase(
        conn, product.id, PurchaseRequest(idempotency_key="k1"), at=T0 + timedelta(hours=3)
    )
    assert created and order.purchased_at == T0 + timedelta(hours=3)
    # the product's updated_at is the time of the sale, not the time the history was written
    assert catalog.get_product(conn, product.id).updated_at == T0 + timedelta(hours=3)
    # without a time, the database's clock as before (and the trigger still moves updated_at)
    live = catalog.add_product(conn, _new("Now"))
    assert abs(live.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    with conn.cursor() as cur:
        cur.execute("UPDATE products SET price = 11 WHERE id = %s", (product.id,))
    conn.commit()
    assert catalog.get_product(conn, product.id).updated_at > T0 + timedelta(days=1)


def test_add_products_returns_ids_in_order(conn: psycopg2.extensions.connection) -> None:
    items = [(_new(f"Book {i}", f"{i + 1}.50"), T0 + timedelta(minutes=i)) for i in range(50)]
    ids = catalog.add_products(conn, items)
    for (new, at), product_id in zip(items, ids, strict=True):
        product = catalog.get_product(conn, product_id)
        assert (product.name, product.price, product.created_at) == (new.name, new.price, at)


def test_add_products_constraint_is_a_clear_error(conn: psycopg2.extensions.connection) -> None:
    bad = NewProduct(name=" padded ", price=Decimal("1.00"))  # bypassing validation
    with pytest.raises(Exception, match="products_name_trimmed"):
        catalog.add_products(conn, [(_new("ok"), T0), (bad, T0)])
    assert catalog.list_products(conn, catalog.ListingQuery()).items == []


def test_purchase_many_keeps_every_rule(conn: psycopg2.extensions.connection) -> None:
    a, b, c = catalog.add_products(conn, [(_new(n), T0) for n in "abc"])
    catalog.purchase(conn, c, PurchaseRequest(idempotency_key="old"), at=T0)
    at = T0 + timedelta(days=1)
    outcomes = catalog.purchase_many(
        conn,
        [
            (a, PurchaseRequest(buyer_ref="x", idempotency_key="ka"), at),
            (a, PurchaseRequest(buyer_ref="x", idempotency_key="ka"), at),  # double click
            (a, PurchaseRequest(buyer_ref="y"), at),  # someone else, too late
            (b, PurchaseRequest(idempotency_key="old"), at),  # key used for another product
            (c, PurchaseRequest(idempotency_key="old"), at),  # replay of an earlier order
            (999_999, PurchaseRequest(), at),
            (b, PurchaseRequest(channel="web"), at),
        ],
    )
    assert [o.created for o in outcomes] == [True, False, False, False, False, False, True]
    assert outcomes[1].order == outcomes[0].order
    assert isinstance(outcomes[2].error, AlreadySold)
    assert isinstance(outcomes[3].error, IdempotencyConflict)
    assert outcomes[4].order is not None and outcomes[4].order.product_id == c
    assert isinstance(outcomes[5].error, NotFound)
    assert outcomes[6].order is not None and outcomes[6].order.purchased_at == at
    with conn.cursor() as cur:
        cur.execute("SELECT product_id, count(*) FROM orders GROUP BY 1 ORDER BY 1")
        assert cur.fetchall() == [(a, 1), (b, 1), (c, 1)]


def test_purchase_many_same_key_two_products_in_one_batch(
    conn: psycopg2.extensions.connection,
) -> None:
    """The batch breaks orders_idempotency_key_unique: it is redone one purchase at a time."""
    a, b = catalog.add_products(conn, [(_new(n), T0) for n in "ab"])
    outcomes = catalog.purchase_many(
        conn,
        [
            (a, PurchaseRequest(idempotency_key="same"), T0),
            (b, PurchaseRequest(idempotency_key="same"), T0),
        ],
    )
    assert outcomes[0].created
    assert isinstance(outcomes[1].error, IdempotencyConflict)
    assert catalog.get_product(conn, b).available


def test_purchase_many_needs_a_transaction(conn: psycopg2.extensions.connection) -> None:
    conn.autocommit = True
    with pytest.raises(ValueError, match="autocommit"):
        catalog.purchase_many(conn, [(1, PurchaseRequest(), T0)])


def test_purchase_many_scopes_keys_to_their_caller(conn: psycopg2.extensions.connection) -> None:
    """Another caller's key is never replayed to this one (as the single purchase scopes it),
    and the batch stores caller and fingerprint so later single purchases check them."""
    a, b = catalog.add_products(conn, [(_new(n), T0) for n in "ab"])
    mine = PurchaseRequest(buyer_ref="me", idempotency_key="k", caller="shop")
    theirs = PurchaseRequest(buyer_ref="them", idempotency_key="k", caller="other")
    first = catalog.purchase_many(conn, [(a, mine, T0)])
    assert first[0].created
    # the same key from another caller buys b: its own order, not a replay of mine
    second = catalog.purchase_many(conn, [(b, theirs, T0)])
    assert second[0].created and second[0].order is not None
    assert second[0].order.product_id == b
    with conn.cursor() as cur:
        cur.execute(
            "SELECT idempotency_caller, request_fingerprint IS NOT NULL FROM orders ORDER BY id"
        )
        assert cur.fetchall() == [("shop", True), ("other", True)]
    conn.commit()
    # a replay through the single purchase finds it; a different body is a conflict
    order, created = catalog.purchase(conn, a, mine)
    assert not created and order == first[0].order
    with pytest.raises(IdempotencyConflict, match="different request body"):
        catalog.purchase(
            conn, a, PurchaseRequest(buyer_ref="else", idempotency_key="k", caller="shop")
        )


def test_purchase_many_replay_with_another_body_is_a_conflict(
    conn: psycopg2.extensions.connection,
) -> None:
    (a,) = catalog.add_products(conn, [(_new("a"), T0)])
    catalog.purchase(conn, a, PurchaseRequest(buyer_ref="x", idempotency_key="kb"), at=T0)
    outcomes = catalog.purchase_many(
        conn,
        [
            (a, PurchaseRequest(buyer_ref="x", idempotency_key="kb"), T0),  # same request
            (a, PurchaseRequest(buyer_ref="y", idempotency_key="kb"), T0),  # same key, new body
        ],
    )
    assert outcomes[0].order is not None and not outcomes[0].created
    assert isinstance(outcomes[1].error, IdempotencyConflict)
    assert "different request body" in outcomes[1].error.message


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["a", "b"],
        ['say "hi"', "back\\slash", "", "{brace}", "comma,here", " space ", "NULL"],
        ["x", None, '"'],
        [1, Decimal("2.50"), None],
        [True, False],
        [T0, None, T0 + timedelta(seconds=1.5)],
        ['"', '","', '"",""'],
    ],
)
def test_pg_array_round_trips(conn: psycopg2.extensions.connection, values: list[object]) -> None:
    kind = {int: "numeric", Decimal: "numeric", bool: "boolean", datetime: "timestamptz"}
    types = {kind.get(type(v), "text") for v in values if v is not None}
    cast = types.pop() if len(types) == 1 else "text"
    with conn.cursor() as cur:
        cur.execute(f"SELECT %s::{cast}[]", (catalog.pg_array(values),))
        (back,) = cur.fetchone()
    conn.rollback()
    assert [v if v is None or cast != "numeric" else Decimal(v) for v in values] == back  # type: ignore[arg-type]
