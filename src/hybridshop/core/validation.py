"""Turn untrusted input (JSON bodies, query strings, path ids) into validated values.

Every rule the database enforces is checked here first, so bad input becomes a clear
message instead of a constraint violation; the database constraints stay as the last guard.
"""

from __future__ import annotations

import hashlib
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

ID_DIGITS_MAX = 19  # len(str(ID_MAX)): longer digit strings are refused before int()
LIMIT_DIGITS_MAX = 10
CATEGORIES_MAX = 20  # categories in one "any of" filter
IDEMPOTENCY_KEY_MAX = 200

CATEGORY_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,49}\Z")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
# ISO 4217 codes of currencies in use (2025 list; funds, metals and test codes left out).
ISO_4217 = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)
# Bidirectional embeddings, overrides and isolates (U+202E "spoofing" and friends).
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Characters that show nothing: format (U+200B ...), private use, unassigned, separators.
_INVISIBLE_CATEGORIES = frozenset(("Cf", "Co", "Cn", "Cc", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"))
IMAGE_URL_RE = re.compile(
    r"https?://[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][A-Za-z0-9\-._~!$&()*+,;=:@/?#%\[\]]*)?"
)
# Ids up to 18 digits, or 19 digits starting 1-8: always below bigint's 2**63 - 1.
CURSOR_RE = re.compile(r"[1-9][0-9]{0,17}|[1-8][0-9]{18}", re.ASCII)
QUERY_TEXT_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f]*")
# RFC 8941 sf-string (the IETF Idempotency-Key draft's form): printable ASCII in quotes.
_SF_STRING_RE = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_BARE_KEY_RE = re.compile(r"[\x21-\x7e]+")
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


# Unicode categories Cc (C0, DEL, C1: fixed by Unicode's stability policy) and Cs (surrogates,
# which a Python str may carry unpaired): one regex scan instead of a category lookup per
# character. ``_has_control_chars`` must stay equal to asking ``unicodedata.category`` of each
# character (tests/core/test_validation.py compares them over every code point).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_NEWLINES_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# ASCII letters, digits, punctuation and symbols: visible, whatever else the text holds.
_ASCII_VISIBLE_RE = re.compile(r"[\x21-\x7e]")


def _has_control_chars(text: str, allow_newlines: bool = False) -> bool:
    """Whether ``text`` holds a character of category Cc or Cs (``\\n``, ``\\t`` and ``\\r``
    allowed with ``allow_newlines``)."""
    pattern = _CONTROL_BUT_NEWLINES_RE if allow_newlines else _CONTROL_RE
    return pattern.search(text) is not None


def _visible(text: str) -> bool:
    if _ASCII_VISIBLE_RE.search(text) is not None:
        return True
    return any(unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text)


def _text(
    errors: _Collector,
    data: Mapping[str, Any],
    field: str,
    *,
    max_len: int,
    required: bool = False,
    multiline: bool = False,
    human: bool = False,
) -> str | None:
    """A string field, stripped and NFC-normalised (so length limits count what people see
    as characters). ``human`` text (names) must show something and carry no bidi controls."""
    if field not in data or data[field] is None:
        if required:
            errors.add(field, "is required")
        return None
    value = data[field]
    if not isinstance(value, str):
        errors.add(field, f"must be a string, not {_json_type(value)}")
        return None
    if len(value) > max_len * 4:  # normalising a huge string is work for nothing
        errors.add(field, f"must be at most {max_len} characters (got {len(value)})")
        return None
    value = unicodedata.normalize("NFC", value).strip()
    if required and not value:
        errors.add(field, "must not be blank")
        return None
    if len(value) > max_len:
        errors.add(field, f"must be at most {max_len} characters (got {len(value)})")
        return None
    if _has_control_chars(value, allow_newlines=multiline):
        errors.add(field, "must not contain control characters")
        return None
    if human and not BIDI_CONTROLS.isdisjoint(value):
        errors.add(
            field,
            "must not contain bidirectional control characters (U+202A-U+202E, U+2066-U+2069)",
        )
        return None
    if human and value and not _visible(value):
        errors.add(
            field,
            "must contain visible characters (not only invisible, private-use or unassigned ones)",
        )
        return None
    return value


def parse_image_url(value: str) -> str:
    """An absolute http(s) URL: a DNS host name, an optional port up to 65535, then only
    unreserved, reserved and percent characters (ASCII; no spaces, quotes, backslashes or
    angle brackets). The OpenAPI document carries the same pattern."""
    if not IMAGE_URL_RE.fullmatch(value):
        raise ValueError(
            "must be an http:// or https:// URL with a host name (ASCII, percent-encoded; "
            "no spaces, quotes or angle brackets)"
        )
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
    name = _text(errors, data, "name", max_len=NAME_MAX, required=True, human=True)
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
        if currency not in ISO_4217:
            errors.add("currency", "must be an ISO 4217 currency code such as EUR or USD")
    image_url = _text(errors, data, "image_url", max_len=URL_MAX)
    if image_url:
        try:
            image_url = parse_image_url(image_url)
        except ValueError as exc:
            errors.add("image_url", str(exc))
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


def parse_purchase(
    data: Any, idempotency_key: str | None = None, caller: str = ""
) -> PurchaseRequest:
    """Validate a purchase body (optional: ``buyer_ref``, ``channel``) and idempotency key;
    ``caller`` (the JWT subject, or "" without an authorizer) scopes the key."""
    data = _require_object(data, PURCHASE_FIELDS)
    errors = _Collector()
    buyer_ref = _text(errors, data, "buyer_ref", max_len=REF_MAX)
    channel = _text(errors, data, "channel", max_len=32)
    if channel is not None and not CHANNEL_RE.match(channel):
        errors.add("channel", "must be lowercase letters, digits, '_' or '-' (e.g. web)")
    if idempotency_key is not None:
        try:
            idempotency_key = parse_idempotency_key(idempotency_key)
        except ValueError as exc:
            errors.add("Idempotency-Key", str(exc))
    errors.raise_if_any()
    return PurchaseRequest(
        buyer_ref=buyer_ref or None,
        channel=channel or "api",
        idempotency_key=idempotency_key,
        caller=caller,
    )


def parse_idempotency_key(raw: str) -> str:
    """The key of an ``Idempotency-Key`` header: an RFC 8941 string (``"8e03978e-..."``) as
    the IETF draft specifies, or, for clients that send it bare, printable ASCII without
    spaces. 1 to 200 characters either way."""
    text = raw.strip(" \t")
    quoted = _SF_STRING_RE.fullmatch(text)
    if quoted:
        key = re.sub(r"\\(.)", r"\1", quoted.group(1))
    elif _BARE_KEY_RE.fullmatch(text) and not text.startswith('"'):
        key = text
    else:
        raise ValueError(
            f'must be a quoted string of printable ASCII ("..."), 1 to {IDEMPOTENCY_KEY_MAX} characters'
        )
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise ValueError(f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters")
    return key


def request_fingerprint(product_id: int, request: PurchaseRequest) -> str:
    """What identifies a purchase request for its idempotency key: the product and the body
    as validated (so formatting differences in the JSON do not matter)."""
    canonical = _CANONICAL_JSON.encode([product_id, request.buyer_ref, request.channel])
    return hashlib.sha256(canonical.encode()).hexdigest()


# what json.dumps(..., separators=(",", ":"), ensure_ascii=True) builds on every call, built
# once (a bulk history computes one fingerprint per purchase)
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def parse_product_id(raw: str | None) -> int:
    """A product id from a path: a positive integer that fits bigint."""
    if raw is None or not raw.isascii() or not raw.isdigit():
        shown = raw if raw is None or len(raw) <= 40 else raw[:40] + "..."
        raise MalformedRequest(f"product id must be a positive integer, got {shown!r}")
    if len(raw.lstrip("0")) > ID_DIGITS_MAX:
        raise MalformedRequest("product id is out of range")
    value = int(raw)
    if value < 1:
        raise MalformedRequest(f"product id must be a positive integer, got {raw!r}")
    if value > ID_MAX:
        raise MalformedRequest("product id is out of range")
    return value


def encode_cursor(last_id: int) -> str:
    """The keyset cursor of a page: the id of its last product, in decimal."""
    return str(last_id)


def _decode_cursor(cursor: str) -> int:
    """Only what ``encode_cursor`` issues, checked by one anchored pattern before ``int``:
    no JSON parser ever sees a client's cursor (a base64 ``[[[[...`` cursor once raised
    RecursionError) and no digit string is longer than an id can be."""
    if not CURSOR_RE.fullmatch(cursor):
        raise MalformedRequest("cursor is not valid: pass the next_cursor value of a previous page")
    return int(cursor)


def parse_listing_query(params: Mapping[str, str] | None) -> ListingQuery:
    """Validate GetProducts query parameters: category, q, limit, cursor, include_sold."""
    params = dict(params or {})
    errors = _Collector()
    for key in sorted(set(params) - LISTING_PARAMS):
        errors.add(key, f"unknown query parameter; allowed: {', '.join(sorted(LISTING_PARAMS))}")
    # Repeated values arrive comma-joined in payload 2.0 (category=a&category=b -> "a,b"):
    # a list of categories means "any of them".
    raw_categories = params.get("category", "")
    categories = raw_categories.split(",")[: CATEGORIES_MAX + 1] if raw_categories else []
    if len(raw_categories) > 51 * CATEGORIES_MAX or len(categories) > CATEGORIES_MAX:
        errors.add("category", f"at most {CATEGORIES_MAX} categories")
    elif any(not CATEGORY_RE.match(c) for c in categories):
        errors.add(
            "category",
            "must be lowercase letters, digits and dashes (comma-separated for any of several)",
        )
    raw_search = params.get("q", "")
    if len(raw_search) > SEARCH_MAX or not QUERY_TEXT_RE.fullmatch(raw_search):
        errors.add("q", f"must be at most {SEARCH_MAX} characters, none a control character")
    search = raw_search.strip() or None
    limit = 20
    if "limit" in params:
        raw = params["limit"]
        if len(raw) > LIMIT_DIGITS_MAX and raw.isascii() and raw.isdigit():
            raise MalformedRequest(f"limit is too long: an integer from 1 to {LIMIT_MAX}")
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= LIMIT_MAX:
            errors.add("limit", f"must be an integer from 1 to {LIMIT_MAX}")
        else:
            limit = int(raw)
    include_sold = False
    if "include_sold" in params:
        flag = params["include_sold"]
        if flag not in ("true", "false"):
            errors.add("include_sold", "must be true or false")
        include_sold = flag == "true"
    errors.raise_if_any()
    after_id = _decode_cursor(params["cursor"]) if params.get("cursor") else None
    return ListingQuery(
        categories=tuple(dict.fromkeys(categories)),
        search=search,
        include_sold=include_sold,
        limit=limit,
        after_id=after_id,
    )
