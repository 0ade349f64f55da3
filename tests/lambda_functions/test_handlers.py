"""The three Lambda handlers, fed real-shaped payload-2.0 events, against real PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import Any

import psycopg2
import pytest

from hybridshop.lambda_functions import add_product, get_item, get_products, settings

JSON = {"content-type": "application/json"}


def _body(response: dict[str, Any]) -> Any:
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def _add(make_event, context, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    event = make_event("POST /products", "/products", body=json.dumps(fields), headers=JSON)
    response = add_product.handler(event, context)
    assert response["statusCode"] == 201, response
    return _body(response)


def test_aws_example_event_gets_clean_answers(aws_example_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    """AWS's documented example (route $default, text body) is answered, never crashes."""
    listing = get_products.handler(aws_example_event, context)
    assert listing["statusCode"] == 404
    assert _body(listing)["error"]["code"] == "not_found"
    added = add_product.handler(aws_example_event, context)
    assert added["statusCode"] == 400
    assert "not valid JSON" in _body(added)["error"]["message"]
    bought = get_item.handler(aws_example_event, context)
    assert bought["statusCode"] == 400
    assert "product id" in _body(bought)["error"]["message"]


def test_add_list_get_purchase(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    created = _add(make_event, context, name="Trail Tent", price=129.5, category="sports")
    assert created["price"] == "129.50"
    listing = get_products.handler(make_event("GET /products", "/products"), context)
    assert [p["name"] for p in _body(listing)["items"]] == ["Trail Tent"]
    one = get_products.handler(
        make_event(
            "GET /products/{id}",
            f"/products/{created['id']}",
            path_parameters={"id": str(created["id"])},
        ),
        context,
    )
    assert _body(one)["id"] == created["id"]
    purchase_event = make_event(
        "POST /products/{id}/purchase",
        f"/products/{created['id']}/purchase",
        path_parameters={"id": str(created["id"])},
        body=json.dumps({"buyer_ref": "visitor-7", "channel": "web"}),
        headers=JSON,
    )
    bought = get_item.handler(purchase_event, context)
    assert bought["statusCode"] == 200
    order = _body(bought)
    assert (order["product_id"], order["price"], order["channel"]) == (
        created["id"],
        "129.50",
        "web",
    )
    again = get_item.handler(purchase_event, context)
    assert again["statusCode"] == 409
    assert _body(again)["error"]["code"] == "already_sold"
    assert (
        _body(get_products.handler(make_event("GET /products", "/products"), context))["items"]
        == []
    )
    categories = _body(get_products.handler(make_event("GET /categories", "/categories"), context))
    assert categories == {"items": [{"name": "sports", "available": 0, "total": 1}]}


def test_add_product_location_header(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    event = make_event(
        "POST /products", "/products", body='{"name": "Mug", "price": "4"}', headers=JSON
    )
    response = add_product.handler(event, context)
    assert response["headers"]["location"] == f"/products/{_body(response)['id']}"


def test_base64_body_is_decoded(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    event = make_event(
        "POST /products",
        "/products",
        body=base64.b64encode(b'{"name": "Caf\xc3\xa9 Beans", "price": 12}').decode(),
        headers=JSON,
    )
    event["isBase64Encoded"] = True
    response = add_product.handler(event, context)
    assert response["statusCode"] == 201
    assert _body(response)["name"] == "Café Beans"


def test_purchase_unknown_is_404(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    event = make_event(
        "POST /products/{id}/purchase",
        "/products/424242/purchase",
        path_parameters={"id": "424242"},
    )
    response = get_item.handler(event, context)
    assert response["statusCode"] == 404
    assert _body(response)["error"] == {
        "code": "not_found",
        "message": "product 424242 does not exist",
    }


def test_idempotency_key_replays_the_order(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    product = _add(make_event, context, name="Kite", price=10)
    event = make_event(
        "POST /products/{id}/purchase",
        f"/products/{product['id']}/purchase",
        path_parameters={"id": str(product["id"])},
        headers={"Idempotency-Key": "web-123"},
    )
    first = get_item.handler(event, context)
    second = get_item.handler(event, context)
    assert first["statusCode"] == second["statusCode"] == 200
    assert _body(first) == _body(second)
    assert second["headers"]["idempotent-replayed"] == "true"


def test_caller_check(make_event, context, lambda_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALLOWED_CALLERS", "shop@project.iam.gserviceaccount.com,1234567890")
    settings.reset()
    ok = get_products.handler(
        make_event("GET /products", "/products", claims={"sub": "1234567890"}), context
    )
    assert ok["statusCode"] == 200
    by_email = make_event(
        "GET /products",
        "/products",
        claims={"sub": "x", "email": "shop@project.iam.gserviceaccount.com"},
    )
    assert get_products.handler(by_email, context)["statusCode"] == 200
    stranger = get_products.handler(
        make_event("GET /products", "/products", claims={"sub": "someone-else"}), context
    )
    assert stranger["statusCode"] == 403
    no_claims = get_products.handler(make_event("GET /products", "/products"), context)
    assert no_claims["statusCode"] == 403


def test_database_down_is_503_not_500(make_event, context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hybridshop.db.embedded import free_port
    from hybridshop.lambda_functions._http import DB

    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    settings.reset()
    DB.reset()
    response = get_products.handler(make_event("GET /products", "/products"), context)
    DB.reset()
    settings.reset()
    assert response["statusCode"] == 503
    assert _body(response)["error"]["code"] == "database_unavailable"
    assert response["headers"]["retry-after"] == "1"  # nothing was written: a retry is safe
    assert "Traceback" not in response["body"]


def test_connection_is_reused_and_recovers(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    from hybridshop.lambda_functions._http import DB

    get_products.handler(make_event("GET /products", "/products"), context)
    first = DB._conn
    get_products.handler(make_event("GET /products", "/products"), context)
    assert DB._conn is first  # warm invocation reuses the connection
    killer = psycopg2.connect(lambda_env)
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (first.get_backend_pid(),))
    killer.close()
    failed = get_products.handler(make_event("GET /products", "/products"), context)
    assert failed["statusCode"] == 503  # a dropped connection is reported, not retried blindly
    recovered = get_products.handler(make_event("GET /products", "/products"), context)
    assert recovered["statusCode"] == 200
    assert DB._conn is not first


BAD_ADD_BODIES: list[tuple[str, dict[str, str], int, str]] = [
    ("", JSON, 400, "must be a JSON object"),
    ("not json", JSON, 400, "not valid JSON"),
    ("[1, 2]", JSON, 400, "must be a JSON object"),
    ('"a string"', JSON, 400, "must be a JSON object"),
    ('{"name": "x", "price": NaN}', JSON, 400, "not valid JSON"),
    ('{"name": "x", "price": Infinity}', JSON, 400, "not valid JSON"),
    ('{"name": "x", "price": 1e999}', JSON, 422, "at most 99999999.99"),
    ('{"name": "x", "price": "1e999"}', JSON, 422, "at most 99999999.99"),
    ('{"name": "x", "price": true}', JSON, 422, "boolean"),
    ('{"name": "x", "price": "12.345"}', JSON, 422, "2 decimal places"),
    ('{"name": "x", "price": -1}', JSON, 422, "greater than 0"),
    ('{"name": "x", "price": 0}', JSON, 422, "greater than 0"),
    ('{"name": "x", "price": 100000000}', JSON, 422, "at most"),
    ('{"name": "", "price": 1}', JSON, 422, "blank"),
    ('{"name": "   ", "price": 1}', JSON, 422, "blank"),
    ('{"price": 1}', JSON, 422, "name: is required"),
    ('{"name": "' + "n" * 201 + '", "price": 1}', JSON, 422, "at most 200"),
    ('{"name": 42, "price": 1}', JSON, 422, "must be a string"),
    ('{"name": "x", "price": 1, "admin": true}', JSON, 422, "unknown field"),
    ('{"name": "x\\u0000y", "price": 1}', JSON, 422, "control characters"),
    ('{"name": "x", "price": 1}', {"content-type": "text/plain"}, 415, "application/json"),
    ('{"name": "' + "n" * 70000 + '", "price": 1}', JSON, 413, "larger than"),
]


@pytest.mark.parametrize(("body", "headers", "status", "fragment"), BAD_ADD_BODIES)
def test_bad_input_is_a_clear_4xx_and_writes_nothing(  # type: ignore[no-untyped-def]
    make_event, context, lambda_env, body, headers, status, fragment
) -> None:
    response = add_product.handler(
        make_event("POST /products", "/products", body=body, headers=headers), context
    )
    assert response["statusCode"] == status
    error = _body(response)["error"]
    assert fragment in error["message"] or any(
        fragment in d["message"] for d in error.get("details", [])
    )
    conn = psycopg2.connect(lambda_env)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM products")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_invalid_base64_body_is_400(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    event = make_event("POST /products", "/products", body="not*base64!", headers=JSON)
    event["isBase64Encoded"] = True
    response = add_product.handler(event, context)
    assert response["statusCode"] == 400
    assert "base64" in _body(response)["error"]["message"]


def _error_classes(base: type[Exception]) -> set[type[Exception]]:
    found: set[type[Exception]] = set()
    todo = [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def test_every_kind_of_error_has_its_own_status() -> None:
    """Errors are mapped by type: each concrete kind the core or the handlers raise has a
    4xx/5xx of its own and a distinct code; nothing falls through to 500 by accident."""
    import hybridshop.lambda_functions._http as http
    from hybridshop.core import errors

    kinds = {
        cls
        for cls in _error_classes(errors.CatalogError)
        if cls is not errors.InvalidInput  # an abstract base, never raised
    }
    assert http.CallerNotAllowed in kinds and errors.MalformedRequest in kinds
    codes = {cls.code for cls in kinds}
    assert len(codes) == len(kinds)
    for cls in kinds:
        exc = cls("x")
        status = http.status_for(exc)
        assert 400 <= status < 500, (cls, status)
        response = http.catalog_error_response(exc)
        assert response["statusCode"] == status
        assert _body(response)["error"]["code"] == cls.code
    assert http.status_for(errors.CatalogError("base")) == 500
    assert http.status_for(ValueError("x")) == 500


def test_settings_are_read_once_per_environment(  # type: ignore[no-untyped-def]
    make_event, context, lambda_env, monkeypatch
) -> None:
    """ALLOWED_CALLERS is read on the first invocation, not on every call (an environment's
    variables never change)."""
    first = get_products.handler(make_event("GET /products", "/products"), context)
    assert first["statusCode"] == 200
    monkeypatch.setenv("ALLOWED_CALLERS", "someone-else")
    again = get_products.handler(make_event("GET /products", "/products"), context)
    assert again["statusCode"] == 200  # still the environment's settings
    settings.reset()  # a new execution environment
    fresh = get_products.handler(make_event("GET /products", "/products"), context)
    assert fresh["statusCode"] == 403


def test_invalid_setting_is_a_500_that_names_the_variable(  # type: ignore[no-untyped-def]
    make_event, context, lambda_env, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    settings.reset()
    response = get_products.handler(make_event("GET /products", "/products"), context)
    assert response["statusCode"] == 500
    assert _body(response)["error"]["code"] == "internal_error"
    assert "LOUD" not in response["body"]  # the caller gets no configuration details
    assert any(r.levelname == "ERROR" and "LOG_LEVEL" in r.getMessage() for r in caplog.records)
    with pytest.raises(settings.SettingsError, match="LOG_LEVEL"):
        settings.FunctionSettings.from_env({"LOG_LEVEL": "LOUD", "DATABASE_URL": "x"})
    parsed = settings.FunctionSettings.from_env(
        {"LOG_LEVEL": "warning", "DATABASE_URL": "postgresql://x", "ALLOWED_CALLERS": " a, ,b "}
    )
    assert parsed.allowed_callers == {"a", "b"} and parsed.log_level == 30
