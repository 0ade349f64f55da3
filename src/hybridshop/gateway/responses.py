"""Turn a Lambda result (payload format 2.0) into an HTTP response, as HTTP API does.

A result with ``statusCode`` is used as given (``cookies`` become ``set-cookie`` headers,
``isBase64Encoded`` bodies are decoded). Any other JSON value is the "shortcut": 200 with
``content-type: application/json`` and that JSON as the body. A result API Gateway cannot
map is the integration's fault: 500 ``{"message":"Internal Server Error"}``: a status outside
200-599 (a Lambda cannot send an interim 1xx), or a header whose name is not an RFC 9110
token or whose value holds CR, LF, NUL or another control character (it would split the
response head). Framing and hop-by-hop headers a function sets (``content-length``,
``transfer-encoding``, ``connection``, ...) are dropped: the server frames every response
itself, as API Gateway does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"
# RFC 9110 5.1 token; 5.5 field value: visible characters, spaces, tabs and obs-text.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
FRAMING_HEADERS = frozenset(
    (
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "date",
        "apigw-requestid",
    )
)


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    request_id: str = ""  # sent as ``apigw-requestid``

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
TOO_MANY_REQUESTS = 429, "Too Many Requests"  # API Gateway's throttling answer
TOO_LARGE = 413, "Request Entity Too Large"


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MappingError(f"header value must be a string, got {type(value).__name__}")


def _add_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    if not _TOKEN.match(name):
        raise MappingError(f"invalid header name {name!r}")
    value = value.strip(" \t")
    if _BAD_VALUE.search(value):
        raise MappingError(f"header {name!r} has a control character in its value")
    if name.lower() not in FRAMING_HEADERS:
        headers.append((name, value))


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
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise MappingError(f"invalid statusCode {result['statusCode']!r}")

    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MappingError("headers must be an object")
    for name, value in raw_headers.items():
        _add_header(headers, str(name), _header_value(value))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MappingError("cookies must be a list")
    for cookie in cookies:
        _add_header(headers, "set-cookie", _header_value(cookie))

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
    if status in (204, 304):
        data = b""  # no body on the wire; keep-alive framing depends on it
    return HttpResponse(status=status, headers=headers, body=data)
