"""Handlers that exercise response mapping and failure modes (one per ``path`` parameter)."""

from __future__ import annotations

import base64
import os
import sys
import time
from typing import Any

PNG_BYTES = bytes(range(256))
counted = 0  # invocations of "count" in this environment (module state stays warm)


def handler(event: dict[str, Any], context: Any) -> Any:
    global counted
    what = event["pathParameters"]["what"]
    if what == "count":
        counted += 1
        return {"statusCode": 200, "body": str(counted)}
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
    # Responses that would break HTTP framing if passed through as given.
    if what == "crlf":
        return {"statusCode": 200, "headers": {"x-bad": "a\r\nx-injected: 1"}, "body": "x"}
    if what == "badname":
        return {"statusCode": 200, "headers": {"bad name": "1"}, "body": "x"}
    if what == "framing":
        return {
            "statusCode": 200,
            "headers": {
                "transfer-encoding": "chunked",
                "content-length": "999",
                "connection": "close",
            },
            "body": "framed",
        }
    if what == "nocontent":
        return {"statusCode": 204, "body": "should not be sent"}
    if what == "notmodified":
        return {"statusCode": 304, "headers": {"etag": '"v1"'}, "body": "should not be sent"}
    if what == "informational":
        return {"statusCode": 103, "body": "early hints are not a final response"}
    if what == "big":
        return {"statusCode": 200, "body": "x" * 16 * 1024}
    return {"statusCode": 404, "body": "unknown behaviour"}
