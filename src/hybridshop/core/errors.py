"""Errors of the catalog, each with a stable machine-readable code and a message for people.

Adapters map codes to transport statuses (see ``lambda_functions._http``); the core never
mentions HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class CatalogError(Exception):
    code = "catalog_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(CatalogError):
    """The request cannot be understood (not JSON, wrong types) or breaks a rule of the catalog.

    ``code`` is ``malformed_request`` for input that is not the right shape at all and
    ``validation_failed`` when it is well formed but a value breaks a rule; ``details`` lists
    one message per offending field so a form can show each next to its field.
    """

    def __init__(
        self,
        message: str,
        details: list[FieldError] | None = None,
        code: str = "validation_failed",
    ) -> None:
        super().__init__(message)
        self.details = details or []
        self.code = code


class NotFound(CatalogError):
    code = "not_found"


class AlreadySold(CatalogError):
    code = "already_sold"


class IdempotencyConflict(CatalogError):
    """An idempotency key was reused for a different purchase."""

    code = "idempotency_conflict"


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
            raise InvalidInput(summary, list(self.errors))
