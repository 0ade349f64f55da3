"""Turn a Lambda result (payload format 2.0) into an HTTP response, as HTTP API does.

A result with ``statusCode`` is used as given (``cookies`` become ``set-cookie`` headers,
``isBase64Encoded`` bodies are decoded). Any other JSON value is the "shortcut": 200 with
``content-type: application/json`` and that JSON as the body. A result API Gateway cannot
map is the integration's fault: 500 ``{"message":"Internal Server Error"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


class MappingError(ValueError):
    """The function returned something HTTP API cannot turn into a response."""


def gateway_message(status: int, message: str) -> HttpResponse:
    """API Gateway's own error shape (``{"message": ...}``), used when no function answers."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status=status, headers=[("content-type", JSON_TYPE)], body=body)


NOT_FOUND = 404, "Not Found"
UNAUTHORIZED = 401, "Unauthorized"
INTERNAL_ERROR = 500, "Internal Server Error"
SERVICE_UNAVAILABLE = 503, "Service Unavailable"
TOO_LARGE = 413, "Request Entity Too Large"


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MappingError(f"header value must be a string, got {type(value).__name__}")


def map_result(payload: str) -> HttpResponse:
    """Map the function's JSON response text; raises MappingError for unusable results."""
    try:
        result = json.loads(payload)
    except ValueError as exc:
        raise MappingError(f"function response is not JSON: {exc}") from None
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResponse(
            status=200, headers=[("content-type", JSON_TYPE)], body=payload.encode()
        )

    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MappingError(f"invalid statusCode {result['statusCode']!r}")

    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MappingError("headers must be an object")
    for name, value in raw_headers.items():
        headers.append((str(name), _header_value(value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MappingError("cookies must be a list")
    headers.extend(("set-cookie", _header_value(c)) for c in cookies)

    body = result.get("body")
    if body is None:
        data = b""
    elif isinstance(body, str):
        if result.get("isBase64Encoded") is True:
            try:
                data = base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                raise MappingError(f"body is not valid base64: {exc}") from None
        else:
            data = body.encode("utf-8")
    else:
        # API Gateway requires a string body; a handler returning a dict here is a bug.
        raise MappingError(f"body must be a string, got {type(body).__name__}")
    return HttpResponse(status=status, headers=headers, body=data)
