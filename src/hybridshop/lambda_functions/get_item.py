"""GetItem: the simulated purchase of one item (``POST /products/{id}/purchase``).

Marks the product unavailable and records the order in one transaction (see
``core.catalog.purchase``). An ``Idempotency-Key`` header makes retries safe: the same key
returns the same order instead of "already sold". Keys are scoped to the caller (the JWT
subject when API Gateway's authorizer ran) and bound to the request they came with.
"""

from __future__ import annotations

from hybridshop.core import catalog
from hybridshop.core.validation import decode_json_body, parse_product_id, parse_purchase
from hybridshop.lambda_functions._http import (
    DB,
    Event,
    Response,
    api_handler,
    body_text,
    header,
    json_response,
    require_json_content,
)


def _caller(event: Event) -> str:
    """Who owns the idempotency key: the token's subject, or "" when no authorizer ran."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    return str(claims.get("sub") or "")


def _purchase(event: Event) -> Response:
    product_id = parse_product_id((event.get("pathParameters") or {}).get("id"))
    text = body_text(event)
    if text is not None and text.strip():
        require_json_content(event)
    request = parse_purchase(
        decode_json_body(text, required=False), header(event, "idempotency-key"), _caller(event)
    )
    order, created = DB.run(lambda conn: catalog.purchase(conn, product_id, request))
    headers = {} if created else {"idempotent-replayed": "true"}
    return json_response(200, order.to_dict(), headers)


handler = api_handler(_purchase)
