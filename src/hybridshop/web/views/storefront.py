"""The customer side: catalog, product page, buying, and this browser's orders."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hybridshop.web import orders
from hybridshop.web.api_client import ApiError
from hybridshop.web.state import shop

log = logging.getLogger("hybridshop.web.storefront")

bp = Blueprint("storefront", __name__)

PAGE_SIZE = 24
MAX_QUERY = 100
# Purchase form keys are uuid4 hex made by us; anything else is a forged or stale form.
PURCHASE_KEY = re.compile(r"^[0-9a-f]{32}$")

SOLD_MESSAGE = "Sorry, this item has just been sold to someone else."


def _product_or_404(product_id: int) -> dict[str, Any]:
    try:
        return shop().api.get_product(product_id)
    except ApiError as exc:
        if exc.status in (400, 404, 422):
            abort(404)
        raise


@bp.get("/")
def catalog() -> tuple[str, int]:
    q = request.args.get("q", "").strip()[:MAX_QUERY]
    category = request.args.get("category", "").strip()
    cursor = request.args.get("cursor", "").strip()
    hide_sold = request.args.get("hide_sold") == "1"
    state = shop()
    api = state.api
    categories = state.cached_categories()
    # Otherwise two independent calls: side by side, so the page costs one API round trip.
    categories_f = None if categories is not None else state.pool.submit(state.fetch_categories)
    error: str | None = None
    status = 200
    try:
        page = api.list_products(
            category=category or None,
            q=q or None,
            limit=PAGE_SIZE,
            cursor=cursor or None,
            include_sold=not hide_sold,
        )
    except ApiError as exc:
        if exc.status >= 500:
            raise
        error, status = exc.message or "That search could not be run.", 400
        page = {"items": [], "next_cursor": None}
    if categories_f is not None:
        categories = categories_f.result()
    return render_template(
        "catalog.html",
        products=page.get("items") or [],
        next_cursor=page.get("next_cursor"),
        categories=categories,
        q=q,
        category=category,
        cursor=cursor,
        hide_sold=hide_sold,
        error=error,
    ), status


@bp.get("/products/<int:product_id>")
def product(product_id: int) -> str:
    return render_template(
        "product.html", product=_product_or_404(product_id), purchase_key=uuid.uuid4().hex
    )


@bp.post("/products/<int:product_id>/buy")
def buy(product_id: int) -> Response | tuple[str, int]:
    key = request.form.get("purchase_key", "")
    if not PURCHASE_KEY.match(key):
        abort(400)
    try:
        order = shop().api.purchase(product_id, idempotency_key=f"web-{key}")
    except ApiError as exc:
        if exc.status == 404:
            abort(404)
        if exc.code == "already_sold" or exc.status == 409:
            item = _product_or_404(product_id)
            item["available"] = False  # even if a replica is behind, we know it's gone
            shop().forget_categories()
            return render_template(
                "product.html", product=item, purchase_key=None, problem=SOLD_MESSAGE
            ), 409
        if exc.status >= 500:
            raise
        log.info("purchase of %s refused: %s", product_id, exc)
        item = _product_or_404(product_id)
        return render_template(
            "product.html",
            product=item,
            purchase_key=uuid.uuid4().hex,
            problem=exc.message or "We couldn't complete that purchase.",
        ), exc.status
    orders.remember(order)
    shop().forget_categories()
    # Post/redirect/get: reloading the confirmation never re-submits the purchase.
    return redirect(url_for("storefront.order", order_id=order["id"]), code=303)


@bp.get("/orders")
def my_orders() -> str:
    return render_template("orders.html", orders=orders.my_orders())


@bp.get("/orders/<int:order_id>")
def order(order_id: int) -> str:
    found = orders.find(order_id)
    if found is None:
        abort(404)
    return render_template("order.html", order=found)
