"""What the three API handlers share: reading payload-2.0 events, answering with 2.0
responses, JSON logs that carry the request id, the caller check, and error mapping.

Kept small and dependency-free (no Powertools) because each import is paid on every cold
start; see the README's benchmark section for the measured import times.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from hybridshop.core.errors import CatalogError, InvalidInput
from hybridshop.db.connection import ConnectionHolder, DatabaseConfigError, DatabaseUnavailable

Event = dict[str, Any]
Response = dict[str, Any]
Handler = Callable[[Event, Any], Response]

STATUS_BY_CODE = {
    "malformed_request": 400,
    "forbidden": 403,
    "not_found": 404,
    "already_sold": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_failed": 422,
    "idempotency_conflict": 422,
    "database_unavailable": 503,
    "internal_error": 500,
}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, the shape CloudWatch Logs Insights queries easily."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        }
        for key in ("request_id", "route", "status", "error_code", "duration_ms", "product_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _make_logger() -> logging.Logger:
    logger = logging.getLogger("hybridshop.api")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(_JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    return logger


log = _make_logger()

# One connection per execution environment, reused while the environment stays warm.
DB = ConnectionHolder()


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_response(
    code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return json_response(STATUS_BY_CODE.get(code, 500), {"error": error})


def header(event: Event, name: str) -> str | None:
    """A request header (payload 2.0 lowercases names; be lenient for hand-made events)."""
    headers = event.get("headers") or {}
    value = headers.get(name.lower())
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name.lower():
                return str(candidate)
    return value


def body_text(event: Event) -> str | None:
    body = event.get("body")
    if body is None:
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(
                "the request body is not valid base64-encoded UTF-8", code="malformed_request"
            ) from None
    return str(body)


def require_json_content(event: Event) -> None:
    """Reject bodies declared as something other than JSON (415); no content-type is accepted."""
    content_type = (header(event, "content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise InvalidInput(
            f"content-type must be application/json, not {content_type}",
            code="unsupported_media_type",
        )


def _caller_allowed(event: Event) -> bool:
    """The API Gateway JWT authorizer accepts ANY Google identity that asked for our audience,
    so the function itself checks that the caller is the shop's service account."""
    allowed = {c.strip() for c in os.environ.get("ALLOWED_CALLERS", "").split(",") if c.strip()}
    if not allowed:
        return True
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get(
        "claims"
    ) or {}
    return bool({str(claims.get("sub", "")), str(claims.get("email", ""))} & allowed)


def api_handler(work: Callable[[Event], Response]) -> Handler:
    """Wrap a route handler: caller check, error mapping, one structured log line per call."""

    def handler(event: Event, context: Any) -> Response:
        started = time.perf_counter()
        request_id = getattr(context, "aws_request_id", None) or (
            event.get("requestContext") or {}
        ).get("requestId")
        route = event.get("routeKey")
        extra: dict[str, Any] = {"request_id": request_id, "route": route}
        try:
            if not _caller_allowed(event):
                response = error_response("forbidden", "this caller is not allowed to use the API")
            else:
                response = work(event)
        except CatalogError as exc:
            details = [d.to_dict() for d in exc.details] if isinstance(exc, InvalidInput) else None
            response = error_response(exc.code, exc.message, details)
            extra["error_code"] = exc.code
        except DatabaseUnavailable as exc:
            log.warning("database unavailable: %s", exc, extra=extra)
            response = error_response(
                "database_unavailable", "the database is unavailable; try again shortly"
            )
            extra["error_code"] = "database_unavailable"
        except DatabaseConfigError as exc:
            log.error("database misconfigured: %s", exc, extra=extra)
            response = error_response("internal_error", f"internal error (request {request_id})")
            extra["error_code"] = "internal_error"
        except Exception:
            log.exception("unhandled error", extra=extra)
            response = error_response("internal_error", f"internal error (request {request_id})")
            extra["error_code"] = "internal_error"
        extra["status"] = response["statusCode"]
        extra["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        log.info("request", extra=extra)
        return response

    return handler
