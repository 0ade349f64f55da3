"""Plain data types of the catalog and their JSON shapes (the API's response bodies).

Prices are ``Decimal`` and serialise as strings ("19.99") so no float rounding ever touches
money; timestamps serialise as RFC 3339 in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    description: str
    category: str
    price: Decimal
    currency: str
    image_url: str | None
    available: bool
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "price": f"{self.price:.2f}",
            "currency": self.currency,
            "image_url": self.image_url,
            "available": self.available,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
        }


@dataclass(frozen=True)
class Order:
    id: int
    product_id: int
    product_name: str
    price: Decimal
    currency: str
    purchased_at: datetime
    buyer_ref: str | None
    channel: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "product_id": self.product_id,
            "product_name": self.product_name,
            "price": f"{self.price:.2f}",
            "currency": self.currency,
            "purchased_at": iso_utc(self.purchased_at),
            "buyer_ref": self.buyer_ref,
            "channel": self.channel,
        }


@dataclass(frozen=True)
class Category:
    name: str
    available: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "available": self.available, "total": self.total}


@dataclass(frozen=True)
class NewProduct:
    """A validated request to add a product (see ``validation.parse_new_product``)."""

    name: str
    price: Decimal
    description: str = ""
    category: str = "general"
    currency: str = "EUR"
    image_url: str | None = None


@dataclass(frozen=True)
class ListingQuery:
    """A validated listing request: filters, page size and keyset cursor."""

    categories: tuple[str, ...] = ()  # any of these (none: every category)
    search: str | None = None
    include_sold: bool = False
    limit: int = 20
    after_id: int | None = None


@dataclass(frozen=True)
class PurchaseRequest:
    buyer_ref: str | None = None
    channel: str = "api"
    idempotency_key: str | None = None
    caller: str = ""  # who the key belongs to: the JWT subject, "" without an authorizer


@dataclass(frozen=True)
class Page:
    items: list[Product]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [p.to_dict() for p in self.items], "next_cursor": self.next_cursor}
