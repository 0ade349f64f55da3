"""Template filters: prices, dates and image choice, so templates hold no logic."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Flask, url_for

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


def money(amount: Any, currency: Any = "EUR") -> str:
    """'1234.5', 'EUR' -> '€1,234.50'; unknown currencies keep their code."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    text = f"{value:,.2f}"
    code = str(currency or "")
    symbol = SYMBOLS.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code}".strip()


def when(iso: Any) -> str:
    """'2026-01-31T12:00:00Z' -> '31 Jan 2026, 12:00 UTC' (dates from the API are UTC)."""
    try:
        dt = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    return dt.strftime("%d %b %Y, %H:%M UTC")


def image_src(product: dict[str, Any]) -> str:
    """The product's photo if it can load under our CSP (https), else our placeholder."""
    url = product.get("image_url")
    if isinstance(url, str) and url.startswith("https://"):
        return url
    return url_for("static", filename="img/placeholder.svg")


def category_label(slug: Any) -> str:
    """'home-garden' -> 'Home garden': slugs are for URLs, labels for people."""
    text = str(slug or "").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def install(app: Flask) -> None:
    app.jinja_env.filters["category_label"] = category_label
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["when"] = when
    app.jinja_env.globals["image_src"] = image_src
