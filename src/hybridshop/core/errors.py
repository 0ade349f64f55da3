"""Errors of the catalog: one exception class per kind, each with a stable machine-readable
``code`` and a message for people.

Adapters map the classes (not the codes) to transport statuses, the way Powertools maps
exception types to responses: see ``lambda_functions._http.STATUS_BY_ERROR``. The core never
mentions HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class CatalogError(Exception):
    """Base of every error the core raises on purpose; ``details`` is empty but for
    ``ValidationFailed``."""

    code: ClassVar[str] = "catalog_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[FieldError] = []


class InvalidInput(CatalogError):
    """Base of the caller's own mistakes in a request (each kind below is its own class)."""

    code: ClassVar[str] = "invalid_input"


class MalformedRequest(InvalidInput):
    """The input is not the right shape at all: not JSON, not an object, a bad path id."""

    code: ClassVar[str] = "malformed_request"


class PayloadTooLarge(InvalidInput):
    code: ClassVar[str] = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    code: ClassVar[str] = "unsupported_media_type"


class ValidationFailed(InvalidInput):
    """Well formed, but values break rules of the catalog; ``details`` lists one message per
    offending field so a form can show each next to its field."""

    code: ClassVar[str] = "validation_failed"

    def __init__(self, message: str, details: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.details = list(details or [])


class NotFound(CatalogError):
    code: ClassVar[str] = "not_found"


class AlreadySold(CatalogError):
    code: ClassVar[str] = "already_sold"


class IdempotencyConflict(CatalogError):
    """An idempotency key was reused for a different purchase."""

    code: ClassVar[str] = "idempotency_conflict"


@dataclass
class _Collector:
    """Gathers every field problem before raising, so users see all of them at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        self.errors.append(FieldError(name, message))

    def raise_if_any(self) -> None:
        if self.errors:
            first = self.errors[0]
            summary = f"{first.field}: {first.message}"
            if len(self.errors) > 1:
                summary += f" (and {len(self.errors) - 1} more)"
            raise ValidationFailed(summary, list(self.errors))
