"""Running a compiled query on DuckDB (the local warehouse) and shaping its rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridshop.analytics.lookml.compiler import CompiledQuery, FieldInfo


@dataclass
class QueryResult:
    fields: list[FieldInfo]
    rows: list[dict[str, Any]]
    pivots: list[str] = field(default_factory=list)
    pivot_values: list[tuple[Any, ...]] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def wide_rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError


def run_query(compiled: CompiledQuery, warehouse: Any | str | Path) -> QueryResult:
    raise NotImplementedError
