"""The handlers under hostile input: never a 500, and the contract's rules on names,
currencies, URLs, cursors, idempotency keys and category lists."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from hybridshop.lambda_functions import add_product, get_item, get_products

JSON = {"content-type": "application/json"}


def _body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def _list(make_event, context, query: dict[str, str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return get_products.handler(make_event("GET /products", "/products", query=query), context)


def _add(make_event, context, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    event = make_event("POST /products", "/products", body=json.dumps(fields), headers=JSON)
    return add_product.handler(event, context)


def _buy(
    make_event,
    context,
    product_id: str,
    *,
    key: str | None = None,
    body: str | None = None,
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    headers = dict(JSON)
    if key is not None:
        headers["idempotency-key"] = key
    event = make_event(
        "POST /products/{id}/purchase",
        f"/products/{product_id}/purchase",
        path_parameters={"id": product_id},
        headers=headers,
        body=body,
        claims=claims,
    )
    return get_item.handler(event, context)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _b64(b"[" * 1000),  # once a RecursionError, a 500
        _b64(b'{"after": ' + b"9" * 5000 + b"}"),  # once int-string limit, a 500
        "A" * 500,
        _b64(b'{"after":5}'),  # not what the API issues (spacing differs)
        _b64(b'{"after": 5, "x": 1}'),
        _b64(b'{"after": 0}'),
        _b64(b'{"after": 99999999999999999999}'),
        "%%%",
    ],
)
def test_cursors_the_api_did_not_issue_are_400(
    make_event, context, lambda_env, cursor: str
) -> None:  # type: ignore[no-untyped-def]
    response = _list(make_event, context, {"cursor": cursor})
    assert response["statusCode"] == 400, response
    assert "cursor" in _body(response)["error"]["message"]


def test_issued_cursor_pages_through(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        assert _add(make_event, context, name=f"P{n}", price="1.00")["statusCode"] == 201
    first = _body(_list(make_event, context, {"limit": "2"}))
    second = _body(_list(make_event, context, {"limit": "2", "cursor": first["next_cursor"]}))
    assert [p["name"] for p in first["items"] + second["items"]] == ["P2", "P1", "P0"]


def test_over_long_numbers_are_400_not_500(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    huge = "9" * 5000
    assert _list(make_event, context, {"limit": huge})["statusCode"] == 400
    one = get_products.handler(
        make_event("GET /products/{id}", f"/products/{huge}", path_parameters={"id": huge}),
        context,
    )
    assert one["statusCode"] == 400 and "out of range" in _body(one)["error"]["message"]
    assert _buy(make_event, context, huge)["statusCode"] == 400


@pytest.mark.parametrize(
    "name",
    ["\u200b\u200b", "\ue000\ue001", "\u202eexe.gnp", "ab\u2066c", "\u0378"],
)
def test_invisible_and_bidi_names_are_refused(make_event, context, lambda_env, name: str) -> None:  # type: ignore[no-untyped-def]
    response = _add(make_event, context, name=name, price="1.00")
    assert response["statusCode"] == 422, response
    assert _body(response)["error"]["details"][0]["field"] == "name"


def test_names_are_nfc_normalised_before_the_length_check(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    decomposed = "e\u0301" * 200  # 400 code points, 200 characters once composed
    response = _add(make_event, context, name=decomposed, price="1.00")
    assert response["statusCode"] == 201, response
    assert _body(response)["name"] == "\u00e9" * 200


def test_currency_must_be_iso_4217(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    assert _add(make_event, context, name="A", price="1.00", currency="ZZZ")["statusCode"] == 422
    made = _add(make_event, context, name="A", price="1.00", currency="usd")
    assert made["statusCode"] == 201 and _body(made)["currency"] == "USD"


@pytest.mark.parametrize(
    "url",
    [
        'https://x.example/a"onerror="alert(1)',
        "https://x.example/<script>",
        "javascript:alert(1)",
        "https:///nohost",
        "https://x.example:99999/",
        "https://x.example/a b",
        "https://bücher.example/",
    ],
)
def test_image_url_must_be_a_clean_http_url(make_event, context, lambda_env, url: str) -> None:  # type: ignore[no-untyped-def]
    response = _add(make_event, context, name="A", price="1.00", image_url=url)
    assert response["statusCode"] == 422, response


def test_valid_image_url_is_kept(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    url = "https://cdn.example.com/img/a%20b.png?x=1"
    made = _add(make_event, context, name="A", price="1.00", image_url=url)
    assert made["statusCode"] == 201 and _body(made)["image_url"] == url


def test_repeated_category_values_mean_any_of(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    for name, category in (("Book", "books"), ("Album", "music"), ("Lamp", "home")):
        assert (
            _add(make_event, context, name=name, price="1.00", category=category)["statusCode"]
            == 201
        )
    # API Gateway joins category=books&category=music into "books,music"
    listing = _list(make_event, context, {"category": "books,music"})
    assert listing["statusCode"] == 200
    assert sorted(p["name"] for p in _body(listing)["items"]) == ["Album", "Book"]
    assert _list(make_event, context, {"category": ",".join(["a"] * 21)})["statusCode"] == 422
    assert _list(make_event, context, {"category": "books,Bad Cat"})["statusCode"] == 422


def test_idempotency_key_bound_to_the_request_and_the_caller(
    make_event, context, lambda_env
) -> None:  # type: ignore[no-untyped-def]
    product = str(_body(_add(make_event, context, name="Kite", price="3.00"))["id"])
    alice = {"sub": "alice", "email": "alice@example.com"}
    bob = {"sub": "bob", "email": "bob@example.com"}
    body = json.dumps({"buyer_ref": "alice-secret-ref"})
    first = _buy(make_event, context, product, key='"k-1"', body=body, claims=alice)
    assert first["statusCode"] == 200, first
    # the same key and request again: the same order (the draft's quoted form and bare agree)
    again = _buy(make_event, context, product, key="k-1", body=body, claims=alice)
    assert again["statusCode"] == 200 and _body(again)["id"] == _body(first)["id"]
    assert again["headers"]["idempotent-replayed"] == "true"
    # the same key with another body: 422, not the order
    other_body = _buy(
        make_event, context, product, key="k-1", body='{"buyer_ref": "x"}', claims=alice
    )
    assert other_body["statusCode"] == 422
    assert _body(other_body)["error"]["code"] == "idempotency_conflict"
    # another caller with the same key never gets alice's order (nor her buyer_ref)
    stolen = _buy(make_event, context, product, key="k-1", body=body, claims=bob)
    assert stolen["statusCode"] == 409, stolen
    assert "alice-secret-ref" not in stolen["body"]


@pytest.mark.parametrize("key", ['"unterminated', '"a" "b"', "has space", "", '""', "é", "x" * 201])
def test_malformed_idempotency_keys_are_422(make_event, context, lambda_env, key: str) -> None:  # type: ignore[no-untyped-def]
    product = str(_body(_add(make_event, context, name="Kite", price="3.00"))["id"])
    response = _buy(make_event, context, product, key=key)
    assert response["statusCode"] == 422, response
    assert _body(response)["error"]["details"][0]["field"] == "Idempotency-Key"
