"""Compiling a dashboard element (or an explore query) into the SQL Looker sends to BigQuery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hybridshop.analytics.lookml.errors import ElementError
from hybridshop.analytics.lookml.project import Project

DEFAULT_LIMIT = 500


@dataclass
class FieldInfo:
    """A selected field as the renderer needs it; ``name`` (``view.field``) is the row key."""

    name: str
    label: str
    category: str  # dimension | measure
    type: str  # string | number | yesno | time | tier | count | sum | ...
    value_format: str | None = None
    value_format_name: str | None = None
    timeframe: str | None = None
    view_label: str | None = None

    @property
    def is_measure(self) -> bool:
        return self.category == "measure"


@dataclass
class CompiledQuery:
    dashboard: str | None
    element: str | None
    model: str | None
    explore: str | None
    bigquery_sql: str | None = None
    duckdb_sql: str | None = None
    fields: list[FieldInfo] = field(default_factory=list)
    pivots: list[str] = field(default_factory=list)
    fill_fields: list[str] = field(default_factory=list)
    sorts: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    filters: dict[str, str] = field(default_factory=dict)  # field -> expression applied
    errors: list[ElementError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.duckdb_sql is not None


def compile_query(
    project: Project,
    model: str | None,
    explore: str,
    fields: list[str],
    *,
    filters: dict[str, str] | None = None,
    sorts: list[str] | None = None,
    limit: int | None = None,
    pivots: list[str] | None = None,
    fill_fields: list[str] | None = None,
    now: datetime | None = None,
    where: tuple[str, int, str] = ("", 0, ""),
) -> CompiledQuery:
    raise NotImplementedError


def compile_element(
    project: Project,
    dashboard: str,
    element_name: str,
    filters: dict[str, str] | None = None,
    now: datetime | None = None,
) -> CompiledQuery:
    raise NotImplementedError
