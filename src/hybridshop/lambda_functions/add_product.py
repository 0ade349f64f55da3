"""AddProduct: add a product to the catalog (``POST /products``), 201 + Location."""

from __future__ import annotations

from hybridshop.core import catalog
from hybridshop.core.validation import decode_json_body, parse_new_product
from hybridshop.lambda_functions._http import (
    DB,
    Event,
    Response,
    api_handler,
    body_text,
    json_response,
    require_json_content,
)


def _add(event: Event) -> Response:
    require_json_content(event)
    new = parse_new_product(decode_json_body(body_text(event)))
    product = DB.run(lambda conn: catalog.add_product(conn, new))
    return json_response(201, product.to_dict(), {"location": f"/products/{product.id}"})


handler = api_handler(_add)
