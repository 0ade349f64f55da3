"""Catalog management: add a product. The API validates; we put its messages beside fields.

Who may: whoever signs in with ``SHOP_ADMIN_TOKEN`` (see ``web.sellers``); without one,
nobody in production and anybody in development.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hybridshop.web import sellers
from hybridshop.web.api_client import ApiError
from hybridshop.web.state import shop

bp = Blueprint("manage", __name__, url_prefix="/manage")


@bp.before_request
def _only_sellers() -> Response | None:
    settings = shop().settings
    if not settings.catalog_enabled:
        abort(404)
    if request.endpoint in ("manage.login", "manage.sign_in") or sellers.signed_in():
        return None
    return redirect(url_for("manage.login", next=request.full_path.rstrip("?")), code=303)


@bp.get("/login")
def login() -> str | Response:
    target = sellers.safe_next(request.args.get("next"), url_for("manage.new_product"))
    if sellers.signed_in():
        return redirect(target, code=303)
    return render_template("login.html", next=target, problem=None)


@bp.post("/login")
def sign_in() -> Response | tuple[str, int]:
    target = sellers.safe_next(request.form.get("next"), url_for("manage.new_product"))
    if not sellers.sign_in(request.form.get("token", "")):
        return render_template(
            "login.html", next=target, problem="That sign-in token is not right."
        ), 403
    return redirect(target, code=303)


@bp.post("/logout")
def logout() -> Response:
    sellers.sign_out()
    flash("You are signed out.")
    return redirect(url_for("storefront.catalog"), code=303)


FIELDS = ("name", "price", "description", "category", "currency", "image_url")
# What the form may omit: the API applies its own defaults to missing optional fields.
OPTIONAL = ("description", "category", "currency", "image_url")


def _form_values() -> dict[str, str]:
    return {f: request.form.get(f, "").strip() for f in FIELDS}


def _body(values: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": values["name"], "price": values["price"]}
    for f in OPTIONAL:
        if values[f]:
            body[f] = values[f]
    return body


@bp.get("/products/new")
def new_product() -> str:
    return render_template("new_product.html", values=dict.fromkeys(FIELDS, ""), errors={})


@bp.post("/products/new")
def create_product() -> Response | tuple[str, int]:
    values = _form_values()
    try:
        created = shop().api.add_product(_body(values))
    except ApiError as exc:
        if exc.status >= 500:
            raise
        errors = {k: v for k, v in exc.field_errors().items() if k in FIELDS}
        general = [f"{d.field}: {d.message}" for d in exc.details if d.field not in FIELDS]
        return render_template(
            "new_product.html",
            values=values,
            errors=errors,
            problem=(
                "Please correct the highlighted fields."
                if errors and not general
                else exc.message or "The product could not be added."
            ),
            general=general,
        ), (422 if exc.status == 422 else 400)
    shop().forget_categories()
    flash(f"“{created.get('name', '')}” is now in the catalog.")
    return redirect(url_for("storefront.product", product_id=created["id"]), code=303)
