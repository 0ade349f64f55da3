"""A stand-in GetProducts for the overload test: ``GET /products/slow`` keeps its one
execution environment busy for a while, so the gateway throttles the shop's own request."""

from __future__ import annotations

import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["pathParameters"]["id"] == "slow":
        time.sleep(3)
    return {"statusCode": 404, "body": '{"error": {"code": "not_found", "message": "no"}}'}
