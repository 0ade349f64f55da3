"""The catalog's business rules, shared by every adapter (Lambda handlers, local gateway, CLI).

Nothing here knows about HTTP, Lambda or Flask: functions take plain values and a DB-API
connection, and raise the errors of ``core.errors``; adapters translate those into responses.
"""

from hybridshop.core.catalog import (
    add_product,
    get_product,
    list_categories,
    list_products,
    purchase,
)
from hybridshop.core.errors import (
    AlreadySold,
    CatalogError,
    FieldError,
    IdempotencyConflict,
    InvalidInput,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from hybridshop.core.models import Category, NewProduct, Order, Page, Product, PurchaseRequest

__all__ = [
    "AlreadySold",
    "CatalogError",
    "Category",
    "FieldError",
    "IdempotencyConflict",
    "InvalidInput",
    "MalformedRequest",
    "NewProduct",
    "NotFound",
    "Order",
    "Page",
    "PayloadTooLarge",
    "Product",
    "PurchaseRequest",
    "UnsupportedMediaType",
    "ValidationFailed",
    "add_product",
    "get_product",
    "list_categories",
    "list_products",
    "purchase",
]
