"""What the three API handlers share: reading payload-2.0 events, answering with 2.0
responses, JSON logs that carry the request id, the caller check, and errors mapped to
responses by exception type (as Powertools' ``exception_handler`` does).

Kept small and dependency-free (no Powertools) because each import is paid on every cold
start; see the README's benchmark section for the measured import times.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from hybridshop.core.errors import (
    AlreadySold,
    CatalogError,
    IdempotencyConflict,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from hybridshop.db.connection import ConnectionHolder, DatabaseConfigError, DatabaseUnavailable
from hybridshop.lambda_functions import settings
from hybridshop.lambda_functions.settings import SettingsError

Event = dict[str, Any]
Response = dict[str, Any]
Handler = Callable[[Event, Any], Response]


class CallerNotAllowed(CatalogError):
    """The JWT is valid but its subject is not one of ``ALLOWED_CALLERS``."""

    code: ClassVar[str] = "forbidden"


# The HTTP status of each kind of error, looked up along the exception's class hierarchy
# (the most specific class listed wins); anything not listed is a 500.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    MalformedRequest: 400,
    CallerNotAllowed: 403,
    NotFound: 404,
    AlreadySold: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    ValidationFailed: 422,
    IdempotencyConflict: 422,
    DatabaseUnavailable: 503,
}


def status_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, the shape CloudWatch Logs Insights queries easily."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "function": getattr(record, "function", None) or "local",
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
    logger.setLevel(logging.INFO)  # until the settings' LOG_LEVEL is applied
    return logger


log = _make_logger()

# One connection per execution environment, reused while the environment stays warm.
DB = ConnectionHolder(lambda: settings.current().database)
_applied: settings.FunctionSettings | None = None


def _settings() -> settings.FunctionSettings:
    """The environment's settings, with the log level applied once (not on every call:
    ``Logger.setLevel`` clears every logger's cache)."""
    global _applied
    config = settings.current()
    if config is not _applied:
        log.setLevel(config.log_level)
        _applied = config
    return config


RETRY_AFTER_S = "1"  # seconds, on a 503 for an unreachable database


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_response(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return json_response(status, {"error": error})


def catalog_error_response(exc: CatalogError) -> Response:
    details = [d.to_dict() for d in exc.details] or None
    return error_response(status_for(exc), exc.code, exc.message, details)


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
            raise MalformedRequest("the request body is not valid base64-encoded UTF-8") from None
    return str(body)


def require_json_content(event: Event) -> None:
    """Reject bodies declared as something other than JSON (415); no content-type is accepted."""
    content_type = (header(event, "content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"content-type must be application/json, not {content_type}")


def check_caller(
    event: Event,
    allowed: frozenset[str],
    message: str = "this caller is not allowed to use the API",
) -> None:
    """The API Gateway JWT authorizer accepts ANY Google identity that asked for our audience,
    so the function itself checks that the caller is one it expects (``sub`` or ``email``)."""
    if not allowed:
        return
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get(
        "claims"
    ) or {}
    if not {str(claims.get("sub", "")), str(claims.get("email", ""))} & allowed:
        raise CallerNotAllowed(message)


def api_handler(work: Callable[[Event], Response]) -> Handler:
    """Wrap a route handler: settings, caller check, errors mapped to responses by type, one
    structured log line per call."""

    def handler(event: Event, context: Any) -> Response:
        started = time.perf_counter()
        request_id = getattr(context, "aws_request_id", None) or (
            event.get("requestContext") or {}
        ).get("requestId")
        route = event.get("routeKey")
        extra: dict[str, Any] = {"request_id": request_id, "route": route}
        internal = f"internal error (request {request_id})"
        try:
            config = _settings()
            extra["function"] = config.function_name
            check_caller(event, config.allowed_callers)
            response = work(event)
        except CatalogError as exc:
            response = catalog_error_response(exc)
            extra["error_code"] = exc.code
        except DatabaseUnavailable as exc:
            log.warning("database unavailable: %s", exc, extra=extra)
            response = error_response(
                status_for(exc),
                "database_unavailable",
                "the database is unavailable; try again shortly",
            )
            response["headers"]["retry-after"] = RETRY_AFTER_S  # nothing was written: retry
            extra["error_code"] = "database_unavailable"
        except (DatabaseConfigError, SettingsError) as exc:
            log.error("function misconfigured: %s", exc, extra=extra)
            response = error_response(500, "internal_error", internal)
            extra["error_code"] = "internal_error"
        except Exception:
            log.exception("unhandled error", extra=extra)
            response = error_response(500, "internal_error", internal)
            extra["error_code"] = "internal_error"
        extra["status"] = response["statusCode"]
        extra["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        log.info("request", extra=extra)
        return response

    return handler
