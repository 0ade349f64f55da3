"""AddProduct: add a product to the catalog (``POST /products``), 201 + Location.

Only sellers may add: with ``ALLOWED_SELLERS`` set, a caller whose ``sub``/``email`` is not
listed gets 403 even if ``ALLOWED_CALLERS`` lets it read and buy.
"""

from __future__ import annotations

from hybridshop.core import catalog
from hybridshop.core.validation import decode_json_body, parse_new_product
from hybridshop.lambda_functions import settings
from hybridshop.lambda_functions._http import (
    DB,
    Event,
    Response,
    api_handler,
    body_text,
    check_caller,
    json_response,
    require_json_content,
)


def _add(event: Event) -> Response:
    check_caller(event, settings.current().allowed_sellers, "this caller may not add products")
    require_json_content(event)
    new = parse_new_product(decode_json_body(body_text(event)))
    product = DB.run(lambda conn: catalog.add_product(conn, new))
    return json_response(201, product.to_dict(), {"location": f"/products/{product.id}"})


handler = api_handler(_add)
