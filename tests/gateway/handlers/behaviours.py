"""Handlers that exercise response mapping and failure modes (one per ``path`` parameter)."""

from __future__ import annotations

import base64
import os
import sys
import time
from typing import Any

PNG_BYTES = bytes(range(256))


def handler(event: dict[str, Any], context: Any) -> Any:
    what = event["pathParameters"]["what"]
    if what == "shortcut":
        return {"hello": "world", "n": [1, 2]}
    if what == "string":
        return "just a string"
    if what == "cookies":
        return {
            "statusCode": 201,
            "headers": {"x-custom": "1", "content-type": "text/plain"},
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "body": "made",
        }
    if what == "binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": base64.b64encode(PNG_BYTES).decode(),
            "isBase64Encoded": True,
        }
    if what == "boom":
        raise RuntimeError("secret-detail-in-traceback")
    if what == "sleep":
        time.sleep(float(event.get("queryStringParameters", {}).get("s", "5")))
        return {"statusCode": 200, "body": "woke"}
    if what == "exit":
        sys.stdout.flush()
        os._exit(3)
    if what == "unserialisable":
        return {"statusCode": 200, "body": object()}
    if what == "badstatus":
        return {"statusCode": "teapot", "body": "x"}
    if what == "remaining":
        return {"statusCode": 200, "body": str(context.get_remaining_time_in_millis())}
    if what == "pid":
        return {"statusCode": 200, "body": str(os.getpid())}
    if what == "stderr":
        print("to stderr", file=sys.stderr)
        return {"statusCode": 204}
    return {"statusCode": 404, "body": "unknown behaviour"}
