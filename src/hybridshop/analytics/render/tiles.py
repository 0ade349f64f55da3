"""One dashboard element -> one tile: compiled, run on the warehouse, shaped for display.

A ``Tile`` is everything the page, the self-contained HTML and the PNG need for one
element: its place on the 24-column grid, its rows (JSON-safe, with the text a person reads
next to each number), the Vega-Lite spec of a chart, the SQL Looker would send to BigQuery
and the DuckDB SQL that ran, or the error that stopped it. A tile that fails carries its
error (``file:line: element: message``); the rest of the dashboard still renders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hybridshop.analytics.render import vega
from hybridshop.analytics.render.formats import field_format, format_value, json_value

CHART_TYPES = {
    "looker_line": "line",
    "looker_area": "area",
    "looker_column": "column",
    "looker_bar": "bar",
    "looker_pie": "pie",
    "looker_donut_multiples": "pie",
    "looker_scatter": "scatter",
}
TABLE_TYPES = {"looker_grid", "table"}
SINGLE_VALUE_TYPES = {"single_value"}
TEXT_TYPES = {"text"}
MAX_ROWS_SHOWN = 500  # Looker's default row limit; a table tile scrolls
# (an element's own larger ``limit`` — up to the compiler's 5000 — is shown in full: a
# 24-hour per-minute chart with ``limit: 1500`` must not stop after its first 500 minutes)


@dataclass
class Column:
    """One field of a tile's rows: ``key`` in the row dicts, what it is, how it reads."""

    key: str
    name: str
    label: str
    category: str  # dimension | measure
    type: str
    timeframe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "label": self.label,
            "category": self.category,
            "type": self.type,
            "timeframe": self.timeframe,
        }


@dataclass
class Tile:
    name: str
    title: str
    type: str  # the element's LookML type
    kind: str  # chart | single_value | table | text | unsupported
    row: int
    col: int
    width: int
    height: int
    columns: list[Column] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # key -> JSON value
    text: list[dict[str, str]] = field(default_factory=list)  # key -> formatted text
    spec: dict[str, Any] | None = None
    bigquery_sql: str | None = None
    duckdb_sql: str | None = None
    errors: list[str] = field(default_factory=list)
    title_text: str = ""
    subtitle_text: str = ""
    body_text: str = ""
    note_text: str = ""
    refresh_s: float | None = None
    took_ms: float = 0.0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "type": self.type,
            "kind": self.kind,
            "layout": {
                "row": self.row,
                "col": self.col,
                "width": self.width,
                "height": self.height,
            },
            "columns": [c.to_dict() for c in self.columns],
            "rows": self.rows,
            "text": self.text,
            "spec": self.spec,
            "sql": {"bigquery": self.bigquery_sql, "duckdb": self.duckdb_sql},
            "errors": self.errors,
            "title_text": self.title_text,
            "subtitle_text": self.subtitle_text,
            "body_text": self.body_text,
            "note_text": self.note_text,
            "refresh_s": self.refresh_s,
            "took_ms": round(self.took_ms, 2),
            "truncated": self.truncated,
        }

    def csv_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Header (labels) and rows (raw values) for "download CSV"."""
        header = [c.label for c in self.columns]
        return header, [[r.get(c.key) for c in self.columns] for r in self.rows]


def kind_of(element_type: str) -> str:
    if element_type in CHART_TYPES:
        return "chart"
    if element_type in TABLE_TYPES:
        return "table"
    if element_type in SINGLE_VALUE_TYPES:
        return "single_value"
    if element_type in TEXT_TYPES:
        return "text"
    return "unsupported"


def parse_refresh(value: Any) -> float | None:
    """Looker's ``refresh`` ("30 seconds", "1 minute", "2 hours", "1 day") in seconds."""
    if value in (None, ""):
        return None
    parts = str(value).strip().lower().split()
    if len(parts) != 2:
        return None
    try:
        amount = float(parts[0])
    except ValueError:
        return None
    unit = parts[1].rstrip("s")
    factor = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}.get(unit)
    return None if factor is None else amount * factor


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def blank_tile(element: Any) -> Tile:
    """The parts of a tile known before any query runs (layout, type, text)."""
    etype = str(_attr(element, "type", "") or "")
    return Tile(
        name=str(_attr(element, "name", "")),
        title=str(_attr(element, "title", "") or ""),
        type=etype,
        kind=kind_of(etype),
        row=_int(_attr(element, "row"), 0),
        col=_int(_attr(element, "col"), 0),
        width=max(1, min(24, _int(_attr(element, "width"), 8))),
        height=max(1, _int(_attr(element, "height"), 6)),
        title_text=str(_attr(element, "title_text", "") or ""),
        subtitle_text=str(_attr(element, "subtitle_text", "") or ""),
        body_text=str(_attr(element, "body_text", "") or ""),
        note_text=str(_attr(element, "note_text", "") or ""),
        refresh_s=parse_refresh(_attr(element, "refresh")),
    )


def columns_for(fields: list[Any]) -> list[Column]:
    columns = [
        Column(
            key=f"f{i}",
            name=str(_attr(f, "name")),
            label=str(_attr(f, "label", "") or _attr(f, "name")),
            category=str(_attr(f, "category", "dimension") or "dimension"),
            type=str(_attr(f, "type", "string") or "string"),
            timeframe=_attr(f, "timeframe"),
        )
        for i, f in enumerate(fields)
    ]
    # two fields with one label (latest change of orders and of products): as Looker does,
    # say which view each belongs to
    labels = [c.label for c in columns]
    for col, f in zip(columns, fields, strict=True):
        if labels.count(col.label) > 1:
            view = _attr(f, "view_label") or col.name.split(".")[0].replace("_", " ").title()
            col.label = f"{view} {col.label}"
    return columns


def shape_rows(
    fields: list[Any], columns: list[Column], raw_rows: list[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Rows keyed ``f0..fn`` (JSON values) and the same rows as formatted text."""
    formats = [field_format(f) for f in fields]
    rows: list[dict[str, Any]] = []
    texts: list[dict[str, str]] = []
    for raw in raw_rows:
        row: dict[str, Any] = {}
        text: dict[str, str] = {}
        for col, fmt in zip(columns, formats, strict=True):
            value = raw.get(col.name)
            row[col.key] = json_value(value)
            text[col.key] = format_value(value, fmt)
        rows.append(row)
        texts.append(text)
    return rows, texts


# The compiler's entry points, passed in so tests and benchmarks can run a tile with any
# compiler (``hybridshop.analytics.lookml`` by default).
Compile = Callable[..., Any]
Run = Callable[[Any, Any], Any]


def build_tile(
    project: Any,
    dashboard: Any,
    element: Any,
    cursor: Any,
    filters: Mapping[str, str] | None = None,
    *,
    compile_element: Compile | None = None,
    run_query: Run | None = None,
    with_spec: bool = True,
    now: Any = None,
) -> Tile:
    """Compile and run one element on ``cursor`` (a DuckDB cursor, TimeZone UTC)."""
    if compile_element is None or run_query is None:
        from hybridshop.analytics import lookml

        compile_element = compile_element or lookml.compile_element
        run_query = run_query or lookml.run_query
    tile = blank_tile(element)
    if tile.kind == "text":
        return tile
    started = time.perf_counter()
    try:
        dashboard_name = dashboard if isinstance(dashboard, str) else _attr(dashboard, "name")
        args: dict[str, Any] = {"now": now} if now is not None else {}
        compiled = compile_element(project, dashboard_name, tile.name, dict(filters or {}), **args)
    except Exception as exc:  # noqa: BLE001 - one bad tile must not take the dashboard down
        tile.errors.append(f"{tile.name}: cannot compile: {exc}")
        return tile
    tile.bigquery_sql = _attr(compiled, "bigquery_sql")
    tile.duckdb_sql = _attr(compiled, "duckdb_sql")
    errors = list(_attr(compiled, "errors", None) or [])
    if errors:
        tile.errors.extend(str(e) for e in errors)
        return tile
    if tile.kind == "unsupported":
        tile.errors.append(
            f"{tile.name}: element type {tile.type!r} is not rendered locally "
            "(line, column, bar, area, pie, scatter, single_value, looker_grid, table, text are)"
        )
    fields = list(_attr(compiled, "fields", None) or [])
    try:
        result = run_query(compiled, cursor)
    except Exception as exc:  # noqa: BLE001 - shown on the tile, with its SQL
        tile.errors.append(f"{tile.name}: query failed: {exc}")
        tile.took_ms = (time.perf_counter() - started) * 1000
        return tile
    ran = _attr(result, "sql", None)
    if isinstance(ran, str):
        tile.duckdb_sql = ran  # "show SQL": the DuckDB SQL that ran (see JoinFact)
    raw_rows = list(_attr(result, "rows", None) or [])
    limit = _attr(compiled, "limit", None)
    shown = max(MAX_ROWS_SHOWN, limit if isinstance(limit, int) else 0)
    if len(raw_rows) > shown:
        raw_rows, tile.truncated = raw_rows[:shown], True
    tile.columns = columns_for(fields)
    tile.rows, tile.text = shape_rows(fields, tile.columns, raw_rows)
    pivots = [str(p) for p in (_attr(compiled, "pivots", None) or [])]
    if with_spec and tile.kind == "chart":
        raw = _attr(element, "raw", None) or {}
        tile.spec = vega.chart_spec(
            CHART_TYPES[tile.type], tile.columns, tile.rows, tile.text, pivots, raw
        )
    tile.took_ms = (time.perf_counter() - started) * 1000
    return tile
