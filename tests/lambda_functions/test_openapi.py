"""The OpenAPI document matches the function registry, and handler responses conform to it."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from hybridshop.lambda_functions import FUNCTIONS, add_product, get_item, get_products


def _spec() -> dict[str, Any]:
    return json.loads((resources.files("hybridshop.lambda_functions") / "openapi.json").read_text())


def _validate(spec: dict[str, Any], path: str, method: str, response: dict[str, Any]) -> None:
    status = str(response["statusCode"])
    declared = spec["paths"][path][method]["responses"]
    assert status in declared, (
        f"{method.upper()} {path} answered {status}, not in the OpenAPI document"
    )
    entry = declared[status]
    if "$ref" in entry:
        entry = spec["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
    schema = {**entry["content"]["application/json"]["schema"], "components": spec["components"]}
    jsonschema.validate(json.loads(response["body"]), schema, cls=jsonschema.Draft202012Validator)


def test_document_is_valid_openapi_31_and_matches_the_registry() -> None:
    spec = _spec()
    assert spec["openapi"].startswith("3.1")
    jsonschema.Draft202012Validator.check_schema(spec["components"]["schemas"]["Product"])
    documented = {
        (f"{method.upper()} {path}", op["x-lambda-function"])
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    registered = {(route, fn.name) for fn in FUNCTIONS for route in fn.routes}
    assert documented == registered


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "Mug", "price": "4.5", "category": "home-garden"}',
        '{"price": "x"}',
        "nope",
        '{"name": "a"}',
    ],
)
def test_add_product_responses_conform(make_event, context, lambda_env, body: str) -> None:  # type: ignore[no-untyped-def]
    event = make_event(
        "POST /products", "/products", body=body, headers={"content-type": "application/json"}
    )
    _validate(_spec(), "/products", "post", add_product.handler(event, context))


def test_read_and_purchase_responses_conform(make_event, context, lambda_env) -> None:  # type: ignore[no-untyped-def]
    spec = _spec()
    made = add_product.handler(
        make_event("POST /products", "/products", body='{"name": "Kite", "price": 3}', headers={}),
        context,
    )
    pid = str(json.loads(made["body"])["id"])
    for query in ({}, {"limit": "1", "include_sold": "true"}, {"limit": "500"}, {"cursor": "%%%"}):
        _validate(
            spec,
            "/products",
            "get",
            get_products.handler(make_event("GET /products", "/products", query=query), context),
        )
    for raw in (pid, "999999", "abc"):
        event = make_event("GET /products/{id}", f"/products/{raw}", path_parameters={"id": raw})
        _validate(spec, "/products/{id}", "get", get_products.handler(event, context))
    _validate(
        spec,
        "/categories",
        "get",
        get_products.handler(make_event("GET /categories", "/categories"), context),
    )
    for raw in (pid, pid, "999999", "0"):
        event = make_event(
            "POST /products/{id}/purchase", f"/products/{raw}/purchase", path_parameters={"id": raw}
        )
        _validate(spec, "/products/{id}/purchase", "post", get_item.handler(event, context))
