"""GetProducts: the catalog, read-only.

Routes: ``GET /products`` (available products; filters and keyset pagination),
``GET /products/{id}`` (one product, sold or not) and ``GET /categories``.
"""

from __future__ import annotations

from hybridshop.core import catalog
from hybridshop.core.errors import NotFound
from hybridshop.core.validation import parse_listing_query, parse_product_id
from hybridshop.lambda_functions._http import (
    DB,
    Event,
    Response,
    api_handler,
    json_response,
)


def _route(event: Event) -> Response:
    route = event.get("routeKey")
    if route == "GET /products/{id}":
        product_id = parse_product_id((event.get("pathParameters") or {}).get("id"))
        product = DB.run(lambda conn: catalog.get_product(conn, product_id))
        return json_response(200, product.to_dict())
    if route == "GET /categories":
        categories = DB.run(catalog.list_categories)
        return json_response(200, {"items": [c.to_dict() for c in categories]})
    if route == "GET /products":
        query = parse_listing_query(event.get("queryStringParameters"))
        page = DB.run(lambda conn: catalog.list_products(conn, query))
        return json_response(200, page.to_dict())
    raise NotFound(f"GetProducts does not serve route {route!r}")


handler = api_handler(_route)
