"""Catalog operations on a PostgreSQL connection (psycopg2 / DB-API).

Each function owns its transaction: it commits on success and rolls back on error, so an
adapter never leaves a half-done purchase behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2.extras import execute_values

from hybridshop.core.errors import (
    AlreadySold,
    CatalogError,
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


def add_product(conn: Any, new: NewProduct, *, at: datetime | None = None) -> Product:
    """Insert one validated product. ``at`` stamps ``created_at``/``updated_at`` explicitly
    (history written by ``hybridshop simulate --backfill-days``); by default the database's
    ``now()``. The API never passes ``at``: a client cannot choose the time."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"""
                INSERT INTO products
                    (name, description, category, price, currency, image_url, created_at,
                     updated_at)
                VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()), coalesce(%s, now()))
                RETURNING {PRODUCT_COLUMNS}
                """,
                (
                    new.name,
                    new.description,
                    new.category,
                    new.price,
                    new.currency,
                    new.image_url,
                    at,
                    at,
                ),
            )
            row = cur.fetchone()
        conn.commit()
    except psycopg2.errors.CheckViolation as exc:
        conn.rollback()
        raise _constraint_error(exc) from None
    except BaseException:
        conn.rollback()
        raise
    return _product(row)


def _constraint_error(exc: psycopg2.errors.CheckViolation) -> ValidationFailed:
    # Validation should have caught it; the constraint is the last guard, never a 500.
    constraint = exc.diag.constraint_name or "a constraint"
    return ValidationFailed(
        f"the product breaks {constraint}", [FieldError("product", f"breaks {constraint}")]
    )


def add_products(
    conn: Any, items: Sequence[tuple[NewProduct, datetime | None]], *, commit: bool = True
) -> list[int]:
    """Bulk ``add_product``: validated products with explicit timestamps (None: now) in one
    multi-row INSERT.

    Returns the new ids in the order of ``items``. With ``commit=False`` the caller owns the
    transaction (a backfill commits one simulated day at a time); on error it is rolled back.
    """
    if not items:
        return []
    columns = (
        [n.name for n, _ in items],
        [n.description for n, _ in items],
        [n.category for n, _ in items],
        [n.price for n, _ in items],
        [n.currency for n, _ in items],
        [n.image_url for n, _ in items],
        [at for _, at in items],
    )
    try:
        with conn.cursor() as cur:
            # One array literal per column, unnested WITH ORDINALITY: PostgreSQL parses each
            # value like COPY does instead of parsing a statement with thousands of literals
            # (twice as fast as a VALUES list, measured). ORDER BY the position so ids are
            # handed out in the order of ``items``.
            cur.execute(
                """
                INSERT INTO products
                    (name, description, category, price, currency, image_url, created_at,
                     updated_at)
                SELECT name, description, category, price, currency, image_url,
                       coalesce(at, now()), coalesce(at, now())
                FROM unnest(%s::text[], %s::text[], %s::text[], %s::numeric[], %s::text[],
                            %s::text[], %s::timestamptz[])
                     WITH ORDINALITY AS v(name, description, category, price, currency,
                                          image_url, at, pos)
                ORDER BY pos
                RETURNING id
                """,
                [pg_array(c) for c in columns],
            )
            result = cur.fetchall()
        if commit:
            conn.commit()
    except psycopg2.errors.CheckViolation as exc:
        conn.rollback()
        raise _constraint_error(exc) from None
    except BaseException:
        conn.rollback()
        raise
    # One statement draws its ids from the sequence in the order it inserts rows (the ORDER
    # BY), so the sorted ids are the ids of ``items`` in order, whatever order RETURNING uses.
    return sorted(r[0] for r in result)


def _element_text(value: Any) -> str:
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def pg_array(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal (``{"a","b",NULL}``) for a bound ``%s::type[]`` parameter:
    every element double-quoted with ``\\`` and ``"`` escaped, so any text round-trips."""
    kinds = set(map(type, values))
    texts: list[str | None]
    if kinds <= {str}:
        texts = list(values)
    elif kinds == {datetime}:
        texts = list(map(datetime.isoformat, values))
    elif kinds <= {int, Decimal}:
        texts = list(map(str, values))
    else:
        texts = [None if v is None else _element_text(v) for v in values]
    if not texts:
        return "{}"
    if type(None) not in kinds:
        # the common case (a bulk write of history): no NULL, and nothing to escape unless
        # a backslash occurs or a quote besides the separators' — two scans of one string
        strings: list[str] = texts  # type: ignore[assignment]
        joined = '","'.join(strings)
        if "\\" not in joined and joined.count('"') == 2 * (len(strings) - 1):
            return '{"' + joined + '"}'
    parts = []
    for text in texts:
        if text is None:
            parts.append("NULL")
        else:
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


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


# The same statement with an explicit time for history (``purchase(..., at=...)``): the
# product's updated_at and the order's purchased_at are that time instead of now().
PURCHASE_AT_SQL = """
    WITH sold AS (
        UPDATE products SET available = false, updated_at = %(at)s
        WHERE id = %(product_id)s AND available
        RETURNING id, name, price, currency
    )
    INSERT INTO orders
        (product_id, price, currency, buyer_ref, channel, idempotency_key, purchased_at,
         idempotency_caller, request_fingerprint)
    SELECT id, price, currency, %(buyer_ref)s, %(channel)s, %(key)s, %(at)s, %(caller)s,
           %(fingerprint)s
    FROM sold
    RETURNING id, product_id, (SELECT name FROM sold), price, currency, purchased_at,
              buyer_ref, channel
"""


def purchase(
    conn: Any, product_id: int, request: PurchaseRequest, *, at: datetime | None = None
) -> tuple[Order, bool]:
    """Buy one product atomically; return the order and whether it was created now.

    The guarded UPDATE (``AND available``) takes the row lock, so of any number of
    concurrent buyers exactly one sees a row come back; the others wait for that commit and
    then find the product sold. The order row is inserted by the same statement, and
    ``orders_product_sold_once`` makes a double sale impossible even for other writers.

    With an idempotency key, repeating the call returns the original order (``created`` is
    False) instead of failing with "already sold". The key is scoped to ``request.caller``
    (another caller's order is never returned) and bound to the request: the same key with
    another product or body raises IdempotencyConflict.

    ``at`` (history only, never from the API) stamps the sale with that time.
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
        "at": at,
    }
    try:
        with conn.cursor() as cur:
            if key is not None:
                existing = _order_by_key(cur, caller, key)
                if existing is not None:
                    conn.commit()
                    return _replay(existing, product_id, fingerprint)
            cur.execute(PURCHASE_SQL if at is None else PURCHASE_AT_SQL, params)
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


@dataclass(frozen=True)
class PurchaseOutcome:
    """What happened to one purchase of a batch: an order (``created`` or a replay of the
    same key) or the error the single purchase would have raised."""

    order: Order | None
    created: bool
    error: CatalogError | None = None


# The batch form of PURCHASE_AT_SQL: the same guarded UPDATE feeding the INSERT, for many
# (product, request, time) rows at once. ``ids`` holds each product once, with the request
# that may buy it (the first one of the batch whose key is not used yet). The UPDATE finds the
# rows by primary key (``= ANY``: no plan that walks the whole table) and takes each row's
# request, time included, from the join with ``req``; the orders are inserted in the order of
# the requests, so their ids follow it.
PURCHASE_MANY_SQL = """
    WITH req AS (
        SELECT * FROM unnest(%(ids)s::bigint[], %(buyers)s::text[], %(channels)s::text[],
                             %(keys)s::text[], %(callers)s::text[], %(fingerprints)s::text[],
                             %(ats)s::timestamptz[], %(pos)s::int[])
                      AS r(product_id, buyer_ref, channel, key, caller, fingerprint, at, pos)
    ),
    sold AS (
        UPDATE products p
        SET available = false, updated_at = r.at
        FROM req r
        WHERE p.id = ANY(%(ids)s::bigint[]) AND p.id = r.product_id AND p.available
        RETURNING p.id, p.name, p.price, p.currency, p.updated_at AS at, r.buyer_ref,
                  r.channel, r.key, r.caller, r.fingerprint, r.pos
    ),
    ins AS (
        INSERT INTO orders
            (product_id, price, currency, buyer_ref, channel, idempotency_key, purchased_at,
             idempotency_caller, request_fingerprint)
        SELECT id, price, currency, buyer_ref, channel, key, at, caller, fingerprint
        FROM sold
        ORDER BY pos
        RETURNING id, product_id, price, currency, purchased_at, buyer_ref, channel
    )
    SELECT s.pos, ins.id, ins.product_id, s.name, ins.price, ins.currency, ins.purchased_at,
           ins.buyer_ref, ins.channel
    FROM ins JOIN sold s ON s.id = ins.product_id
"""


def purchase_many(
    conn: Any,
    purchases: Sequence[tuple[int, PurchaseRequest, datetime]],
    *,
    commit: bool = True,
) -> list[PurchaseOutcome]:
    """Bulk ``purchase`` with explicit times, for history: one statement for the batch.

    Every rule of the single purchase holds: the guarded UPDATE sells a product at most once
    (of several requests for one product in a batch, the first may buy it),
    ``orders_product_sold_once`` still guards the table, and a request whose idempotency key
    exists is answered by :func:`purchase` (a replay, or ``IdempotencyConflict``). Requests
    that sold nothing get the error :func:`purchase` would raise (``AlreadySold``,
    ``NotFound``). If a concurrent writer breaks a unique constraint mid-batch, the batch is
    retried one purchase at a time. With ``commit=False`` the caller owns the transaction.
    """
    if not purchases:
        return []
    if conn.autocommit:
        raise ValueError("purchase_many needs a transaction: the connection is in autocommit")
    keyed = [
        (req.caller, req.idempotency_key)
        for _, req, _ in purchases
        if req.idempotency_key is not None
    ]
    outcomes: list[PurchaseOutcome | None] = [None] * len(purchases)
    try:
        with conn.cursor() as cur:
            used: set[tuple[str, str]] = set()
            if keyed:
                # keys this caller already used: answered below as the single purchase
                # answers them (a replay, or a conflict). Looked up by the unique index on
                # (caller, key): a key is scoped to its caller.
                cur.execute(
                    "SELECT o.idempotency_caller, o.idempotency_key "
                    "FROM unnest(%s::text[], %s::text[]) AS k (caller, key) "
                    "JOIN orders o ON o.idempotency_caller = k.caller "
                    "AND o.idempotency_key = k.key",
                    (pg_array([c for c, _ in keyed]), pg_array([k for _, k in keyed])),
                )
                used = {(r[0], r[1]) for r in cur.fetchall()}
            first: dict[int, int] = {}  # product id -> position of the request that may buy
            for i, (pid, req, _at) in enumerate(purchases):
                if pid not in first and (
                    req.idempotency_key is None or (req.caller, req.idempotency_key) not in used
                ):
                    first[pid] = i
            chosen = list(first.values())
            params = {
                "ids": pg_array([purchases[i][0] for i in chosen]),
                "buyers": pg_array([purchases[i][1].buyer_ref for i in chosen]),
                "channels": pg_array([purchases[i][1].channel for i in chosen]),
                "keys": pg_array([purchases[i][1].idempotency_key for i in chosen]),
                "callers": pg_array([purchases[i][1].caller for i in chosen]),
                "fingerprints": pg_array(
                    [
                        request_fingerprint(purchases[i][0], purchases[i][1])
                        if purchases[i][1].idempotency_key is not None
                        else None
                        for i in chosen
                    ]
                ),
                "pos": pg_array(chosen),
                "ats": pg_array([purchases[i][2] for i in chosen]),
            }
            try:
                # the savepoint travels with the statement: one round trip
                cur.execute("SAVEPOINT purchase_many; " + PURCHASE_MANY_SQL, params)
                result = cur.fetchall()
            except psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT purchase_many")
                result = []
                one_by_one = True
            else:
                one_by_one = False
            for pos, *order in result:
                outcomes[pos] = PurchaseOutcome(Order(*order), True)
            if one_by_one:
                for i, (pid, req, at) in enumerate(purchases):
                    outcomes[i] = _purchase_one_in_tx(conn, pid, req, at)
            else:
                _explain_misses(cur, purchases, outcomes)
        if commit:
            conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    return [o for o in outcomes if o is not None]


def _explain_misses(
    cur: Any,
    purchases: Sequence[tuple[int, PurchaseRequest, datetime]],
    outcomes: list[PurchaseOutcome | None],
) -> None:
    """What :func:`purchase` answers for each request the batch did not sell, in one query:
    the order of its idempotency key (a replay, or a conflict if it bought another product),
    else ``AlreadySold`` if the product exists, else ``NotFound``. After the batch statement
    a request without an order can only have a used key or an unavailable product."""
    missed = [
        (i, pid, req.caller, req.idempotency_key)
        for i, (pid, req, _at) in enumerate(purchases)
        if outcomes[i] is None
    ]
    if not missed:
        return
    rows = execute_values(
        cur,
        """
        SELECT m.pos::int, m.product_id::bigint, o.id, o.product_id, p.name, o.price,
               o.currency, o.purchased_at, o.buyer_ref, o.channel, o.request_fingerprint,
               EXISTS (SELECT 1 FROM products e WHERE e.id = m.product_id::bigint)
        FROM (VALUES %s) AS m (pos, product_id, caller, key)
        LEFT JOIN orders o ON o.idempotency_caller = m.caller AND o.idempotency_key = m.key
        LEFT JOIN products p ON p.id = o.product_id
        """,
        missed,
        page_size=len(missed),
        fetch=True,
    )
    for pos, product_id, order_id, *rest in rows:
        exists = rest.pop()
        stored = rest.pop()
        if order_id is not None:
            # the key's order, checked as the single purchase checks it (same product, same
            # request body, else IdempotencyConflict)
            try:
                order, _ = _replay(
                    (Order(order_id, *rest), stored),
                    product_id,
                    request_fingerprint(product_id, purchases[pos][1]),
                )
            except IdempotencyConflict as exc:
                outcomes[pos] = PurchaseOutcome(None, False, exc)
            else:
                outcomes[pos] = PurchaseOutcome(order, False)
        elif exists:
            outcomes[pos] = PurchaseOutcome(
                None, False, AlreadySold(f"product {product_id} has already been sold")
            )
        else:
            outcomes[pos] = PurchaseOutcome(
                None, False, NotFound(f"product {product_id} does not exist")
            )


def _missed(conn: Any, product_id: int) -> PurchaseOutcome:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM products WHERE id = %s", (product_id,))
        found = cur.fetchone()
    if found is None:
        return PurchaseOutcome(None, False, NotFound(f"product {product_id} does not exist"))
    return PurchaseOutcome(None, False, AlreadySold(f"product {product_id} has already been sold"))


def _purchase_one_in_tx(
    conn: Any, product_id: int, request: PurchaseRequest, at: datetime
) -> PurchaseOutcome:
    """One purchase inside the caller's transaction (a savepoint keeps the batch alive)."""
    key = request.idempotency_key
    fingerprint = request_fingerprint(product_id, request)
    with conn.cursor() as cur:
        if key is not None:
            existing = _order_by_key(cur, request.caller, key)
            if existing is not None:
                try:
                    order, _ = _replay(existing, product_id, fingerprint)
                except IdempotencyConflict as exc:
                    return PurchaseOutcome(None, False, exc)
                return PurchaseOutcome(order, False)
        cur.execute("SAVEPOINT purchase_one")
        try:
            cur.execute(
                PURCHASE_AT_SQL,
                {
                    "product_id": product_id,
                    "buyer_ref": request.buyer_ref,
                    "channel": request.channel,
                    "key": key,
                    "at": at,
                    "caller": request.caller,
                    "fingerprint": fingerprint if key is not None else None,
                },
            )
            row = cur.fetchone()
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT purchase_one")
            row = None
        cur.execute("RELEASE SAVEPOINT purchase_one")
    if row is not None:
        return PurchaseOutcome(Order(*row), True)
    return _missed(conn, product_id)
