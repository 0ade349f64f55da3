"""Build API Gateway HTTP API payload-2.0 events from plain HTTP requests.

The handlers run unchanged on AWS, so the event must be the one AWS sends, including its
quirks: lowercased header names, repeats joined with commas, cookies moved out of the
headers, and keys with no value left out (never ``null``; Powertools' v2 detection trips on
nulls).
"""

from __future__ import annotations

import base64
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

PAYLOAD_VERSION = "2.0"
STAGE = "$default"
LOCAL_ACCOUNT_ID = "000000000000"  # no AWS account locally; LocalStack uses the same
LOCAL_API_ID = "hybridshop"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Content types API Gateway passes as text; everything else arrives base64-encoded.
_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/graphql",
)


@dataclass
class HttpRequest:
    """What the server read off the wire, before any API Gateway processing."""

    method: str
    target: str  # request-target as sent: path plus optional "?query"
    headers: list[tuple[str, str]]  # in arrival order, original case
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    received_at: float = field(default_factory=time.time)

    @property
    def raw_path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def raw_query(self) -> str:
        return self.target.partition("?")[2]


# Ids are unique, not secret: a seeded PRNG avoids a getrandom() syscall per id on the
# gateway's hot path (three ids per request).
_random = random.Random(int.from_bytes(os.urandom(16), "big"))


def new_request_id() -> str:
    """An id shaped like API Gateway's (16 base64 characters, e.g. ``JKJaXmPLvHcESHA=``)."""
    return base64.b64encode(_random.getrandbits(88).to_bytes(11, "big")).decode("ascii")


def new_uuid() -> str:
    """A version-4 UUID string (Lambda's ``aws_request_id`` format), formatted directly:
    ``uuid.UUID`` costs ~15 us per id, on every invocation."""
    h = f"{_random.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def trace_id(now: float) -> str:
    """An X-Ray trace header value, which API Gateway adds to every request."""
    return f"Root=1-{int(now):08x}-{_random.getrandbits(96):024x}"


_time_cache: tuple[int, str] = (-1, "")


def format_request_time(epoch: float) -> str:
    """``12/Mar/2020:19:03:58 +0000``: the CLF time of ``requestContext.time`` (English months)."""
    global _time_cache
    second = int(epoch)
    cached = _time_cache
    if cached[0] == second:
        return cached[1]
    t = time.gmtime(second)
    text = (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )
    _time_cache = (second, text)
    return text


def is_text_content_type(content_type: str | None) -> bool:
    """Whether API Gateway would hand this body to Lambda as text (else base64)."""
    if not content_type:
        return True  # decided by the bytes themselves, see encode_body
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith("+json")
        or media.endswith("+xml")
    )


def encode_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """Event ``body`` and ``isBase64Encoded`` for raw request bytes."""
    if is_text_content_type(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass  # not valid text after all: send it the way binary bodies go
    return base64.b64encode(body).decode("ascii"), True


def collect_headers(raw: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Lowercase and comma-join headers; pull every Cookie header out into a cookie list."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in raw:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c for c in (p.strip() for p in value.split(";")) if c)
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers, cookies


def query_parameters(raw_query: str) -> dict[str, str]:
    """Decoded query parameters, repeats joined with commas (2.0 has no multi-value map)."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True, errors="replace"):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def build_event(
    request: HttpRequest,
    *,
    route_key: str,
    path_parameters: dict[str, str],
    request_id: str,
    authorizer: dict[str, Any] | None = None,
    port: int = 0,
    api_id: str = LOCAL_API_ID,
    account_id: str = LOCAL_ACCOUNT_ID,
    stage_variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The payload-2.0 event for ``request`` matched to ``route_key``.

    ``authorizer`` is the ``{"jwt": {...}}`` block when a JWT authorizer ran.
    """
    headers, cookies = collect_headers(request.headers)
    host = headers.get("host", f"{api_id}.execute-api.localhost")
    domain_name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    # Headers API Gateway adds in front of every integration.
    prior = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{prior}, {request.source_ip}" if prior else request.source_ip
    headers.setdefault("x-forwarded-port", str(port))
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-amzn-trace-id", trace_id(request.received_at))
    if request.body and "content-length" not in headers:
        headers["content-length"] = str(len(request.body))

    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": STAGE,
        "time": format_request_time(request.received_at),
        "timeEpoch": int(request.received_at * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = authorizer

    event: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    params = query_parameters(request.raw_query) if request.raw_query else None
    if params:
        event["queryStringParameters"] = params
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = path_parameters
    if stage_variables:
        event["stageVariables"] = stage_variables
    if request.body:
        event["body"], event["isBase64Encoded"] = encode_body(
            request.body, headers.get("content-type")
        )
    else:
        event["isBase64Encoded"] = False
    return event
