"""Turn untrusted input (JSON bodies, query strings, path ids) into validated values.

Every rule the database enforces is checked here first, so bad input becomes a clear
message instead of a constraint violation; the database constraints stay as the last guard.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from hybridshop.core.errors import MalformedRequest, PayloadTooLarge, _Collector
from hybridshop.core.models import ListingQuery, NewProduct, PurchaseRequest

NAME_MAX = 200
DESCRIPTION_MAX = 5000
URL_MAX = 2000
SEARCH_MAX = 100
REF_MAX = 200
PRICE_MAX = Decimal("99999999.99")  # NUMERIC(10,2)
LIMIT_MAX = 100
MAX_BODY_BYTES = 64 * 1024
ID_MAX = 2**63 - 1

CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)

PRODUCT_FIELDS = {"name", "description", "category", "price", "currency", "image_url"}
PURCHASE_FIELDS = {"buyer_ref", "channel"}
LISTING_PARAMS = {"category", "q", "limit", "cursor", "include_sold"}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json_body(body: str | bytes | None, *, required: bool = True) -> Any:
    """Parse a request body as strict JSON (no NaN/Infinity; numbers kept as exact Decimals)."""
    if body is None or (isinstance(body, str | bytes) and not body.strip()):
        if required:
            raise MalformedRequest("the request body must be a JSON object")
        return {}
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {exc}") from None


def _require_object(data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedRequest("the request body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        errors = _Collector()
        for key in unknown:
            errors.add(key, f"unknown field; allowed fields are {', '.join(sorted(allowed))}")
        errors.raise_if_any()
    return data


def _has_control_chars(text: str, allow_newlines: bool = False) -> bool:
    for ch in text:
        if allow_newlines and ch in "\n\t\r":
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return True
    return False


def _text(
    errors: _Collector,
    data: Mapping[str, Any],
    field: str,
    *,
    max_len: int,
    required: bool = False,
    multiline: bool = False,
) -> str | None:
    if field not in data or data[field] is None:
        if required:
            errors.add(field, "is required")
        return None
    value = data[field]
    if not isinstance(value, str):
        errors.add(field, f"must be a string, not {_json_type(value)}")
        return None
    value = value.strip()
    if required and not value:
        errors.add(field, "must not be blank")
        return None
    if len(value) > max_len:
        errors.add(field, f"must be at most {max_len} characters (got {len(value)})")
        return None
    if _has_control_chars(value, allow_newlines=multiline):
        errors.add(field, "must not contain control characters")
        return None
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_price(value: Any) -> Decimal:
    """A finite positive amount with at most 2 decimals that fits NUMERIC(10,2)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str | float):
        raise ValueError(f"must be a number or a decimal string, not {_json_type(value)}")
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError("must be a decimal number such as 19.99") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount <= 0:
        raise ValueError("must be greater than 0")
    if amount > PRICE_MAX:
        raise ValueError(f"must be at most {PRICE_MAX}")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("must have at most 2 decimal places")
    return amount.quantize(Decimal("0.01"))


def parse_new_product(data: Any) -> NewProduct:
    """Validate an AddProduct body, reporting every bad field at once."""
    data = _require_object(data, PRODUCT_FIELDS)
    errors = _Collector()
    name = _text(errors, data, "name", max_len=NAME_MAX, required=True)
    description = _text(errors, data, "description", max_len=DESCRIPTION_MAX, multiline=True)
    category = _text(errors, data, "category", max_len=50)
    if category is not None:
        category = category.lower()
        if not CATEGORY_RE.match(category):
            errors.add(
                "category", "must be lowercase letters, digits and dashes (e.g. home-garden)"
            )
    currency = _text(errors, data, "currency", max_len=10)
    if currency is not None:
        currency = currency.upper()
        if not CURRENCY_RE.match(currency):
            errors.add("currency", "must be a 3-letter ISO 4217 code such as EUR")
    image_url = _text(errors, data, "image_url", max_len=URL_MAX)
    if image_url is not None and image_url and not URL_RE.match(image_url):
        errors.add("image_url", "must be an http:// or https:// URL")
    price = None
    if "price" not in data or data["price"] is None:
        errors.add("price", "is required")
    else:
        try:
            price = parse_price(data["price"])
        except ValueError as exc:
            errors.add("price", str(exc))
    errors.raise_if_any()
    assert name is not None and price is not None
    return NewProduct(
        name=name,
        price=price,
        description=description or "",
        category=category or "general",
        currency=currency or "EUR",
        image_url=image_url or None,
    )


def parse_purchase(data: Any, idempotency_key: str | None = None) -> PurchaseRequest:
    """Validate a purchase body (optional: ``buyer_ref``, ``channel``) and idempotency key."""
    data = _require_object(data, PURCHASE_FIELDS)
    errors = _Collector()
    buyer_ref = _text(errors, data, "buyer_ref", max_len=REF_MAX)
    channel = _text(errors, data, "channel", max_len=32)
    if channel is not None and not CHANNEL_RE.match(channel):
        errors.add("channel", "must be lowercase letters, digits, '_' or '-' (e.g. web)")
    if idempotency_key is not None:
        key = idempotency_key.strip()
        if not key or len(key) > REF_MAX or _has_control_chars(key):
            errors.add("Idempotency-Key", f"must be 1 to {REF_MAX} printable characters")
        idempotency_key = key
    errors.raise_if_any()
    return PurchaseRequest(
        buyer_ref=buyer_ref or None, channel=channel or "api", idempotency_key=idempotency_key
    )


def parse_product_id(raw: str | None) -> int:
    """A product id from a path: a positive integer that fits bigint."""
    if raw is None or not raw.isascii() or not raw.isdigit():
        raise MalformedRequest(f"product id must be a positive integer, got {raw!r}")
    value = int(raw)
    if value < 1:
        raise MalformedRequest(f"product id must be a positive integer, got {raw!r}")
    if value > ID_MAX:
        raise MalformedRequest("product id is out of range")
    return value


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
        if isinstance(after, bool) or not isinstance(after, int) or not 0 < after <= ID_MAX:
            raise ValueError
        return after
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise MalformedRequest(
            "cursor is not valid: pass the next_cursor value of a previous page"
        ) from None


def parse_listing_query(params: Mapping[str, str] | None) -> ListingQuery:
    """Validate GetProducts query parameters: category, q, limit, cursor, include_sold."""
    params = dict(params or {})
    errors = _Collector()
    for key in sorted(set(params) - LISTING_PARAMS):
        errors.add(key, f"unknown query parameter; allowed: {', '.join(sorted(LISTING_PARAMS))}")
    category = params.get("category", "").strip().lower() or None
    if category is not None and not CATEGORY_RE.match(category):
        errors.add("category", "must be lowercase letters, digits and dashes")
    search = params.get("q", "").strip() or None
    if search is not None and (len(search) > SEARCH_MAX or _has_control_chars(search)):
        errors.add("q", f"must be at most {SEARCH_MAX} printable characters")
    limit = 20
    if "limit" in params:
        raw = params["limit"].strip()
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= LIMIT_MAX:
            errors.add("limit", f"must be an integer from 1 to {LIMIT_MAX}")
        else:
            limit = int(raw)
    include_sold = False
    if "include_sold" in params:
        flag = params["include_sold"].strip().lower()
        if flag not in ("true", "false", "1", "0"):
            errors.add("include_sold", "must be true or false")
        include_sold = flag in ("true", "1")
    errors.raise_if_any()
    after_id = _decode_cursor(params["cursor"]) if params.get("cursor") else None
    return ListingQuery(
        category=category, search=search, include_sold=include_sold, limit=limit, after_id=after_id
    )
