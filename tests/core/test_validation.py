"""Validation rules of the core, without a database."""

from __future__ import annotations

import sys
import unicodedata
from decimal import Decimal

import pytest

from hybridshop.core import validation
from hybridshop.core.errors import InvalidInput
from hybridshop.core.models import PurchaseRequest
from hybridshop.core.validation import (
    decode_json_body,
    encode_cursor,
    parse_listing_query,
    parse_new_product,
    parse_price,
    parse_product_id,
    parse_purchase,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1, "1.00"),
        (Decimal("19.99"), "19.99"),
        ("0.5", "0.50"),
        ("99999999.99", "99999999.99"),
        (" 7 ", "7.00"),
    ],
)
def test_valid_prices(raw: object, expected: str) -> None:
    assert str(parse_price(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (True, "not a boolean"),
        (0, "greater than 0"),
        (-5, "greater than 0"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ("1e999", "at most 99999999.99"),
        (Decimal("1E+999"), "at most"),
        (100000000, "at most"),
        ("1.234", "2 decimal places"),
        ("abc", "decimal number"),
        ("", "decimal number"),
        (None, "not null"),
        ([1], "not an array"),
        ({"amount": 1}, "not an object"),
    ],
)
def test_invalid_prices(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_price(raw)


def test_json_body_rejects_nan_and_infinity_literals() -> None:
    for body in ('{"price": NaN}', '{"price": Infinity}', '{"price": -Infinity}'):
        with pytest.raises(InvalidInput) as err:
            decode_json_body(body)
        assert err.value.code == "malformed_request"


def test_json_body_keeps_exact_decimals() -> None:
    assert decode_json_body('{"price": 0.1}')["price"] == Decimal("0.1")


@pytest.mark.parametrize("body", ["", "   ", "not json", "{", '{"a": 1,}', "\xff"])
def test_json_body_not_json(body: str) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_json_body(body)
    assert err.value.code == "malformed_request"


def test_json_body_too_large() -> None:
    with pytest.raises(InvalidInput) as err:
        decode_json_body('{"name": "' + "x" * 70_000 + '"}')
    assert err.value.code == "payload_too_large"


def test_new_product_normalises() -> None:
    product = parse_new_product(
        {"name": "  Desk Lamp ", "price": "10", "category": "Home-Garden", "currency": "eur"}
    )
    assert product.name == "Desk Lamp"
    assert product.category == "home-garden"
    assert product.currency == "EUR"
    assert product.price == Decimal("10.00")


def _fields(data: object) -> dict[str, str]:
    with pytest.raises(InvalidInput) as err:
        parse_new_product(data)
    return {d.field: d.message for d in err.value.details}


def test_new_product_reports_every_bad_field_at_once() -> None:
    fields = _fields({"name": "   ", "price": "NaN", "currency": "euro", "colour": "red"})
    assert set(fields) == {"colour"}  # unknown fields are reported before anything else
    fields = _fields({"name": "   ", "price": "NaN", "currency": "euro"})
    assert fields == {
        "name": "must not be blank",
        "price": "must be a finite number",
        "currency": "must be an ISO 4217 currency code such as EUR or USD",
    }


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"price": 1}, "name", "is required"),
        ({"name": "x" * 201, "price": 1}, "name", "at most 200"),
        ({"name": 5, "price": 1}, "name", "must be a string"),
        ({"name": "a\x00b", "price": 1}, "name", "control characters"),
        ({"name": "ok"}, "price", "is required"),
        ({"name": "ok", "price": False}, "price", "boolean"),
        ({"name": "ok", "price": 1, "image_url": "javascript:alert(1)"}, "image_url", "http"),
        ({"name": "ok", "price": 1, "category": "Not A Slug!"}, "category", "lowercase"),
        ({"name": "ok", "price": 1, "description": ["x"]}, "description", "must be a string"),
    ],
)
def test_new_product_field_errors(data: dict[str, object], field: str, fragment: str) -> None:
    assert fragment in _fields(data)[field]


@pytest.mark.parametrize("data", [[], "text", 5, None])
def test_new_product_body_must_be_an_object(data: object) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_new_product(data)
    assert err.value.code == "malformed_request"


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "", None, "9" * 30, "١٢"])
def test_product_id_rejects(raw: str | None) -> None:
    with pytest.raises(InvalidInput):
        parse_product_id(raw)


def test_listing_query_and_cursor_round_trip() -> None:
    query = parse_listing_query({"category": "books", "limit": "5", "cursor": encode_cursor(42)})
    assert (query.categories, query.limit, query.after_id) == (("books",), 5, 42)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"cursor": "garbage"},
        {"sort": "price"},
        {"include_sold": "maybe"},
    ],
)
def test_listing_query_rejects(params: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        parse_listing_query(params)


def test_purchase_request() -> None:
    request = parse_purchase({"buyer_ref": "session-1", "channel": "web"}, " key-1 ")
    assert (request.buyer_ref, request.channel, request.idempotency_key) == (
        "session-1",
        "web",
        "key-1",
    )
    with pytest.raises(InvalidInput):
        parse_purchase({"channel": "Web Shop"})
    with pytest.raises(InvalidInput):
        parse_purchase({}, "x" * 201)


def _control_chars_by_category(text: str, allow_newlines: bool) -> bool:
    """The rule as first written: a category lookup per character (the reference)."""
    return any(
        unicodedata.category(ch) in ("Cc", "Cs")
        for ch in text
        if not (allow_newlines and ch in "\n\t\r")
    )


def _visible_by_category(text: str) -> bool:
    return any(unicodedata.category(ch) not in validation._INVISIBLE_CATEGORIES for ch in text)


@pytest.mark.parametrize("allow_newlines", [False, True])
def test_control_char_fast_path_equals_the_category_rule(allow_newlines: bool) -> None:
    """The regex scan answers as the per-character category lookup does, for every code point
    (surrogates included) alone and inside ordinary text."""
    differ = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if validation._has_control_chars(chr(cp), allow_newlines)
        != _control_chars_by_category(chr(cp), allow_newlines)
    ]
    assert differ == []
    for text in ["Plain name", "Ünïcödé ✓", "line\nbreak", "tab\there", "bad\x00", "c1\x85",
                 "del\x7f", "lone \ud800 surrogate", "bidi \u202e ok", "", "\r\n"]:  # fmt: skip
        assert validation._has_control_chars(text, allow_newlines) == _control_chars_by_category(
            text, allow_newlines
        ), repr(text)


def test_visible_fast_path_equals_the_category_rule() -> None:
    differ = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if validation._visible(chr(cp)) != _visible_by_category(chr(cp))
    ]
    assert differ == []
    for text in ["\u200b\u200b", " \u00a0 ", "\u200ba", "", "\ue000", "x"]:
        assert validation._visible(text) == _visible_by_category(text), repr(text)


def test_text_rules_unchanged_by_the_fast_paths() -> None:
    """What parse_new_product answers for control, bidi and invisible text is as before."""
    cases = {
        "a\x00b": "control characters",
        "a\x9fb": "control characters",
        "a\ud800b": "control characters",
        "a\u202eb": "bidirectional",
        "\u200b\u200c": "visible characters",
    }
    for name, fragment in cases.items():
        with pytest.raises(InvalidInput) as info:
            parse_new_product({"name": name, "price": "1.00"})
        assert any(fragment in d.message for d in info.value.details), name
    product = parse_new_product(
        {"name": "Lamp ✓", "price": "1.00", "description": "two\nlines\tand\r\ntabs"}
    )
    assert product.description == "two\nlines\tand\r\ntabs"
    with pytest.raises(InvalidInput):
        parse_new_product({"name": "Lamp", "price": "1.00", "description": "bell\x07"})


def test_request_fingerprint_is_sha256_of_the_canonical_json() -> None:
    """Stored fingerprints must stay comparable: the exact bytes hashed do not change."""
    import hashlib
    import json

    for request in [
        PurchaseRequest(buyer_ref="shopper-00001", channel="web", idempotency_key="k"),
        PurchaseRequest(buyer_ref=None, channel="api"),
        PurchaseRequest(buyer_ref='ü "quoted" \\ ✓', channel="mobile"),
    ]:
        canonical = json.dumps(
            [42, request.buyer_ref, request.channel], separators=(",", ":"), ensure_ascii=True
        )
        expected = hashlib.sha256(canonical.encode()).hexdigest()
        assert validation.request_fingerprint(42, request) == expected
