"""Catalog operations on a PostgreSQL connection (psycopg2 / DB-API).

Each function owns its transaction: it commits on success and rolls back on error, so an
adapter never leaves a half-done purchase behind.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.errors

from hybridshop.core.errors import (
    AlreadySold,
    FieldError,
    IdempotencyConflict,
    NotFound,
    ValidationFailed,
)
from hybridshop.core.models import (
    Category,
    ListingQuery,
    NewProduct,
    Order,
    Page,
    Product,
    PurchaseRequest,
)
from hybridshop.core.validation import encode_cursor, request_fingerprint

PRODUCT_COLUMNS = (
    "id, name, description, category, price, currency, image_url, available, created_at, updated_at"
)


def _product(row: tuple[Any, ...]) -> Product:
    return Product(*row)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_products(conn: Any, query: ListingQuery) -> Page:
    """Products newest first (stable: ordered by id), with keyset pagination.

    Only available products unless ``include_sold``; fetches one extra row to know whether
    there is a next page without a COUNT.
    """
    where: list[str] = []
    args: list[Any] = []
    if not query.include_sold:
        where.append("available")
    if len(query.categories) == 1:
        where.append("category = %s")
        args.append(query.categories[0])
    elif query.categories:
        where.append("category = ANY(%s)")
        args.append(list(query.categories))
    if query.search:
        where.append("name ILIKE %s")
        args.append(f"%{_escape_like(query.search)}%")
    if query.after_id is not None:
        where.append("id < %s")
        args.append(query.after_id)
    sql = f"SELECT {PRODUCT_COLUMNS} FROM products"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT %s"
    args.append(query.limit + 1)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    items = [_product(r) for r in rows[: query.limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > query.limit else None
    return Page(items=items, next_cursor=next_cursor)


def get_product(conn: Any, product_id: int) -> Product:
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = %s", (product_id,))
            row = cur.fetchone()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    if row is None:
        raise NotFound(f"product {product_id} does not exist")
    return _product(row)


def list_categories(conn: Any) -> list[Category]:
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT category, count(*) FILTER (WHERE available), count(*) "
                "FROM products GROUP BY category ORDER BY category"
            )
            rows = cur.fetchall()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return [Category(name=r[0], available=r[1], total=r[2]) for r in rows]


def add_product(conn: Any, new: NewProduct) -> Product:
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"""
                INSERT INTO products (name, description, category, price, currency, image_url)
                VALUES (%s, %s, %s, %s, %s, %s)
                RETURNING {PRODUCT_COLUMNS}
                """,
                (new.name, new.description, new.category, new.price, new.currency, new.image_url),
            )
            row = cur.fetchone()
        conn.commit()
    except psycopg2.errors.CheckViolation as exc:
        conn.rollback()
        # Validation should have caught it; the constraint is the last guard, never a 500.
        constraint = exc.diag.constraint_name or "a constraint"
        raise ValidationFailed(
            f"the product breaks {constraint}", [FieldError("product", f"breaks {constraint}")]
        ) from None
    except BaseException:
        conn.rollback()
        raise
    return _product(row)


_ORDER_SELECT = """
    SELECT o.id, o.product_id, p.name, o.price, o.currency, o.purchased_at, o.buyer_ref, o.channel
    FROM orders o JOIN products p ON p.id = o.product_id
"""


def _order_by_key(cur: Any, caller: str, key: str) -> tuple[Order, str | None] | None:
    """The order this caller made with this key, and the fingerprint of its request."""
    cur.execute(
        _ORDER_SELECT.replace("o.channel", "o.channel, o.request_fingerprint")
        + " WHERE o.idempotency_caller = %s AND o.idempotency_key = %s",
        (caller, key),
    )
    row = cur.fetchone()
    return (Order(*row[:-1]), row[-1]) if row else None


def _replay(
    existing: tuple[Order, str | None], product_id: int, fingerprint: str
) -> tuple[Order, bool]:
    order, stored = existing
    if order.product_id != product_id:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used for a purchase of another product"
        )
    if stored is not None and stored != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
    return order, False


# One statement, so one round trip and one transaction even in autocommit mode: the guarded
# UPDATE takes the row lock and the INSERT only sees a row if this statement sold it.
PURCHASE_SQL = """
    WITH sold AS (
        UPDATE products SET available = false
        WHERE id = %(product_id)s AND available
        RETURNING id, name, price, currency
    )
    INSERT INTO orders (product_id, price, currency, buyer_ref, channel, idempotency_key,
                        idempotency_caller, request_fingerprint)
    SELECT id, price, currency, %(buyer_ref)s, %(channel)s, %(key)s, %(caller)s,
           %(fingerprint)s
    FROM sold
    RETURNING id, product_id, (SELECT name FROM sold), price, currency, purchased_at,
              buyer_ref, channel
"""


def purchase(conn: Any, product_id: int, request: PurchaseRequest) -> tuple[Order, bool]:
    """Buy one product atomically; return the order and whether it was created now.

    The guarded UPDATE (``AND available``) takes the row lock, so of any number of
    concurrent buyers exactly one sees a row come back; the others wait for that commit and
    then find the product sold. The order row is inserted by the same statement, and
    ``orders_product_sold_once`` makes a double sale impossible even for other writers.

    With an idempotency key, repeating the call returns the original order (``created`` is
    False) instead of failing with "already sold". The key is scoped to ``request.caller``
    (another caller's order is never returned) and bound to the request: the same key with
    another product or body raises IdempotencyConflict.
    """
    key = request.idempotency_key
    caller = request.caller
    fingerprint = request_fingerprint(product_id, request)
    params = {
        "product_id": product_id,
        "buyer_ref": request.buyer_ref,
        "channel": request.channel,
        "key": key,
        "caller": caller,
        "fingerprint": fingerprint if key is not None else None,
    }
    try:
        with conn.cursor() as cur:
            if key is not None:
                existing = _order_by_key(cur, caller, key)
                if existing is not None:
                    conn.commit()
                    return _replay(existing, product_id, fingerprint)
            cur.execute(PURCHASE_SQL, params)
            row = cur.fetchone()
            if row is not None:
                conn.commit()
                return Order(*row), True
            # Nothing sold: say why (the slow path only runs when the purchase fails).
            if key is not None:
                # A concurrent request with the same key may have just won the row.
                existing = _order_by_key(cur, caller, key)
                if existing is not None:
                    conn.commit()
                    return _replay(existing, product_id, fingerprint)
            cur.execute("SELECT available FROM products WHERE id = %s", (product_id,))
            found = cur.fetchone()
            conn.commit()
        if found is None:
            raise NotFound(f"product {product_id} does not exist")
        raise AlreadySold(f"product {product_id} has already been sold")
    except psycopg2.errors.UniqueViolation as exc:
        conn.rollback()
        if exc.diag.constraint_name == "orders_idempotency_key_unique" and key is not None:
            with conn.cursor() as cur:
                existing = _order_by_key(cur, caller, key)
            conn.commit()
            if existing is not None:
                return _replay(existing, product_id, fingerprint)
        raise AlreadySold(f"product {product_id} has already been sold") from None
    except (NotFound, AlreadySold):
        raise
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
