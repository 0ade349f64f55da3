"""Errors of the LookML compiler: every message names a file, a line and an element."""

from __future__ import annotations


class ElementError(Exception):
    """Something in the Looker project we cannot compile (or that is wrong).

    ``file`` is relative to the project root when possible, ``line`` is 1-based (0 when
    unknown), ``element`` is what the problem belongs to: ``dashboard/element``,
    ``view.field``, ``explore`` or ``dashboard`` (empty for a whole file).
    """

    def __init__(self, file: str, line: int, element: str, message: str) -> None:
        super().__init__(f"{file}:{line}: {element + ': ' if element else ''}{message}")
        self.file = file
        self.line = line
        self.element = element
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ElementError) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "element": self.element,
            "message": self.message,
        }


class UnsupportedError(ElementError):
    """A LookML feature the local compiler does not implement (parameter, Liquid, …)."""


class FilterExpressionError(ValueError):
    """A Looker filter expression that does not parse; the caller adds file and line."""
