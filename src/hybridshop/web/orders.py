""" "My orders": what this browser session bought, kept in the signed session cookie.

The API has no per-buyer order listing (buyers are anonymous), so the browser session is
the only place that knows; we keep a small, capped summary to stay under cookie limits.
"""

from __future__ import annotations

from typing import Any

from flask import session

SESSION_KEY = "orders"
MAX_ORDERS = 12  # ~150 bytes each keeps the cookie well under 4 KB
FIELDS = ("id", "product_id", "product_name", "price", "currency", "purchased_at")


def remember(order: dict[str, Any]) -> None:
    summary = {k: order.get(k) for k in FIELDS}
    kept = [o for o in my_orders() if o.get("id") != summary["id"]]
    session[SESSION_KEY] = [summary, *kept][:MAX_ORDERS]
    session.permanent = True


def my_orders() -> list[dict[str, Any]]:
    value = session.get(SESSION_KEY)
    return [o for o in value if isinstance(o, dict)] if isinstance(value, list) else []


def find(order_id: int) -> dict[str, Any] | None:
    return next((o for o in my_orders() if o.get("id") == order_id), None)
