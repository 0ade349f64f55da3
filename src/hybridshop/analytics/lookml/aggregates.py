"""Aggregate awareness: a query an explore's ``aggregate_table`` covers reads the roll-up.

Looker (https://cloud.google.com/looker/docs/aggregate_awareness) persists each
``aggregate_table:`` of an explore as a table and answers a query from it instead of the
base tables whenever the aggregate holds every row and value the query needs. Locally the
same LookML does the same on DuckDB: the aggregate's own query is compiled like any explore
query (``materialize_sql``), created as a table in the in-memory catalog of the connection
that holds one read copy of the warehouse (``runner.JoinFacts.materialized``: once per copy;
a new copy is a new connection, so a new materialization — never stale), and the query is
compiled a second time against that table (``AggregatePlan.sql``). ``run_query`` with the
copy's ``JoinFacts`` runs it; without them (the CLI, a path) the base query runs. The
BigQuery SQL (what Looker would send) is never changed.

A query is covered by an aggregate table — Looker's rules, as this module applies them:

1. **Dimensions**: every dimension of the query is a dimension of the aggregate, or is a
   timeframe of a ``dimension_group`` the aggregate holds at a finer timeframe it derives
   from (``hour`` → date, week, month, quarter, year, hour_of_day, day_of_week,
   day_of_week_index, day_of_month, month_num, week_of_year; ``date`` → the same but
   hour_of_day). Locally an aggregate's time dimensions must be ``hour`` or ``date``
   timeframes, its other dimensions string or number (an aggregate with others is not used).
2. **Measures**: every measure of the query is a measure of the aggregate. ``count``,
   ``sum``, ``min`` and ``max`` re-aggregate (count → sum of counts, sum → sum of sums, min of
   mins, max of maxes) when the measure belongs to the explore's base view and every join
   the aggregate uses is a ``left_outer`` ``many_to_one``/``one_to_one`` join (so the roll-up
   neither repeats nor drops a base row: a joined view's count, e.g., is a distinct count
   that does not add up across groups). ``count_distinct``, ``average``, ``median``,
   ``percentile`` and the rest do not re-aggregate: they are read from the aggregate only
   when the query has **exactly** the aggregate's grain (the same dimensions, timeframes
   included, and filters only on those dimensions), one aggregate row per result row.
   ``type: number`` measures and measures reading the clock are not used from aggregates.
3. **Filters**: every filter of the aggregate's query is in the query with the same
   expression; every other filter of the query is on a dimension the aggregate has (rule 1)
   or on a measure it may use (rule 2). A date filter on a derived timeframe must fall on
   the aggregate's grain: every timestamp bound it resolves to lies on a whole hour
   (``hour``) or day (``date``) — ``after 2024-01-01 10:30`` on an hourly aggregate is not
   covered.
4. **Time zone**: the aggregate's ``timezone``, when set, is UTC (the query time zone the
   local dashboards and this project's Looker connection use).

When several aggregates cover a query, the first one declared in the explore is used
(declare the smaller ones first, as Looker picks the smallest it can). Anything not covered
falls back to the base query.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import sqlglot

from hybridshop.analytics.lookml.project import AggregateTable, Explore, Field, Project, View

if TYPE_CHECKING:
    from hybridshop.analytics.lookml.compiler import CompiledQuery

# the in-memory catalog of the connection holding a read copy (``runner.open_read_only``)
CATALOG = "memory.main"

DERIVES: dict[str, frozenset[str]] = {
    "date": frozenset(
        (
            "date",
            "week",
            "month",
            "quarter",
            "year",
            "day_of_week",
            "day_of_week_index",
            "day_of_month",
            "month_num",
            "week_of_year",
        )
    ),
}
DERIVES["hour"] = DERIVES["date"] | {"hour", "hour_of_day"}
REAGGREGATE = {"count": "sum", "sum": "sum", "min": "min", "max": "max"}
_ALIGNED = {"hour": ":00:00", "date": " 00:00:00"}
_TS_LITERAL = re.compile(r"TIMESTAMP\('([^']*)'\)")
_CLOCK = re.compile(r"\b(CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_DATETIME|NOW)\b", re.I)


@dataclass(frozen=True)
class AggregatePlan:
    """How to answer one compiled query from an aggregate table (DuckDB only)."""

    table: AggregateTable
    local_table: str  # memory.main.<name>: one per distinct materialization
    materialize_sql: str  # CREATE OR REPLACE TABLE … AS SELECT (the aggregate's own query)
    sql: str  # the query, on the aggregate table
    columns: dict[str, str]  # column of ``sql`` -> column of the CompiledQuery's fields

    def describe(self) -> str:
        t = self.table
        return f"aggregate_table {t.explore}::{t.name} ({t.file}:{t.line})"


def _field_of(project: Project, ex: Explore, ref: str) -> tuple[str, Field] | None:
    alias, _, name = ref.partition(".")
    if alias == ex.name:
        view_name = ex.view_name
    elif alias in ex.joins:
        view_name = ex.joins[alias].view_name
    else:
        return None
    view = project.views.get(view_name)
    f = view.fields.get(name) if view is not None else None
    return (alias, f) if f is not None else None


def _mangle(ref: str) -> str:
    return ref.replace(".", "__")


def _reads_clock(f: Field) -> bool:
    return bool(f.sql and _CLOCK.search(f.sql)) or f.type == "number"


def plan_aggregate(
    project: Project,
    ex: Explore,
    base: CompiledQuery,
    fields: list[str],
    filters: Mapping[str, str],
    now: datetime | None,
    table_map: Mapping[str, str] | None,
) -> AggregatePlan | None:
    """The first aggregate table of ``ex`` that covers the query (see the module doc)."""
    for table in ex.aggregate_tables:
        plan = _plan_one(project, ex, table, base, fields, filters, now, table_map)
        if plan is not None:
            return plan
    return None


def source_query(
    project: Project,
    ex: Explore,
    table: AggregateTable,
    now: datetime | None = None,
    table_map: Mapping[str, str] | None = None,
) -> CompiledQuery:
    """The aggregate table's own query, compiled (what Looker persists)."""
    from hybridshop.analytics.lookml.compiler import MAX_LIMIT, compile_query

    return compile_query(
        project,
        ex.model,
        ex.name,
        table.dimensions + table.measures,
        filters=table.filters,
        limit=MAX_LIMIT,
        now=now,
        table_map=table_map,
        where=(table.file, table.line, f"{ex.name}::{table.name}"),
        _explore=ex,
    )


def _plan_one(
    project: Project,
    ex: Explore,
    table: AggregateTable,
    base: CompiledQuery,
    fields: list[str],
    filters: Mapping[str, str],
    now: datetime | None,
    table_map: Mapping[str, str] | None,
) -> AggregatePlan | None:
    from hybridshop.analytics.lookml.compiler import _column, compile_query

    if table.timezone not in (None, "UTC", "Etc/UTC"):
        return None
    agg_dims: dict[str, Field] = {}
    groups: dict[tuple[str, str], tuple[str, str]] = {}  # (alias, group) -> (timeframe, ref)
    aliases: set[str] = set()
    for ref in table.dimensions + table.measures + list(table.filters):
        found = _field_of(project, ex, ref)
        if found is None:
            return None
        aliases.add(found[0])
    for ref in table.dimensions:
        alias, f = _field_of(project, ex, ref) or ("", None)
        assert f is not None
        if f.timeframe is not None:
            if f.timeframe not in DERIVES or f.group is None:
                return None
            groups[(alias, f.group)] = (f.timeframe, ref)
        elif f.type not in ("string", "number"):
            return None
        agg_dims[ref] = f
    # a roll-up that repeats or drops base rows cannot be re-aggregated
    adds_no_rows = all(
        ex.joins[a].type == "left_outer"
        and ex.joins[a].relationship in ("many_to_one", "one_to_one")
        for a in aliases
        if a != ex.name
    )
    # the query's own filters: the aggregate's must all be there, with the same expression
    remaining: dict[str, str] = {}
    for ref, expr in filters.items():
        if table.filters.get(ref) == expr:
            continue
        remaining[ref] = expr
    if any(filters.get(ref) != expr for ref, expr in table.filters.items()):
        return None
    query_dims = [r for r in fields if not base.field_info(r).is_measure]
    # exact grain: one aggregate row per result row, and no join of the roll-up that could
    # drop a base row (symmetric aggregates take care of the ones that repeat rows)
    exact = (
        set(query_dims) == set(table.dimensions)
        and all(r in query_dims for r in remaining)
        and all(ex.joins[a].type == "left_outer" for a in aliases if a != ex.name)
    )

    vname = f"__aggregate__{ex.name}__{table.name}"
    synthetic: dict[str, Field] = {}
    mapping: dict[str, str] = {}  # query ref -> synthetic ref

    def time_field(alias: str, f: Field) -> str | None:
        assert f.group is not None and f.timeframe is not None
        hit = groups.get((alias, f.group))
        if hit is None or f.timeframe not in DERIVES[hit[0]]:
            return None
        _grain, ref = hit
        group = _mangle(f"{alias}.{f.group}")
        # the local table stores the hour / day as its TIMESTAMP (``materialize_sql``), so
        # each timeframe is Looker's SQL over a TIMESTAMP, as on the base table
        sql, datatype = f"${{TABLE}}.{_column(ref)}", None
        name = f"{group}_{f.timeframe}"
        synthetic[name] = Field(
            view=vname,
            name=name,
            category="dimension",
            type="time",
            sql=sql,
            file=table.file,
            line=table.line,
            group=group,
            timeframe=f.timeframe,
            datatype=datatype,
        )
        return name

    def measure_field(ref: str, f: Field) -> str | None:
        if ref not in table.measures or _reads_clock(f):
            return None
        alias = ref.partition(".")[0]
        if not exact and (f.type not in REAGGREGATE or alias != ex.name or not adds_no_rows):
            return None
        name = _mangle(ref)
        synthetic[name] = Field(
            view=vname,
            name=name,
            category="measure",
            type="max" if exact else REAGGREGATE[f.type],
            sql=f"${{TABLE}}.{_column(ref)}",
            file=table.file,
            line=table.line,
        )
        return name

    def dimension_field(ref: str, alias: str, f: Field) -> str | None:
        if f.timeframe is not None:
            return time_field(alias, f)
        if ref not in agg_dims:
            return None
        name = _mangle(ref)
        synthetic[name] = Field(
            view=vname,
            name=name,
            category="dimension",
            type=f.type,
            sql=f"${{TABLE}}.{_column(ref)}",
            file=table.file,
            line=table.line,
        )
        return name

    for ref in list(fields) + list(remaining):
        if ref in mapping:
            continue
        found = _field_of(project, ex, ref)
        if found is None:
            return None
        alias, f = found
        name = measure_field(ref, f) if f.is_measure else dimension_field(ref, alias, f)
        if name is None:
            return None
        mapping[ref] = f"{ex.name}.{name}"

    source = source_query(project, ex, table, now, table_map)
    if not source.ok or source.duckdb_sql is None:
        return None
    select = sqlglot.parse_one(source.duckdb_sql, read="duckdb")
    select.set("order", None)
    select.set("limit", None)
    select_sql = select.sql("duckdb")
    # Looker stores the hour as '%F %H' text and the date as a DATE; locally the roll-up keeps
    # the TIMESTAMP each stands for (the same rows; no text parsed per query)
    as_timestamp = [
        f"CAST({_column(ref)} || ':00:00' AS TIMESTAMP) AS {_column(ref)}"
        if grain == "hour"
        else f"CAST({_column(ref)} AS TIMESTAMP) AS {_column(ref)}"
        for grain, ref in groups.values()
    ]
    if as_timestamp:
        select_sql = f"SELECT * REPLACE ({', '.join(as_timestamp)}) FROM ({select_sql}) AS rollup"
    digest = hashlib.sha256(select_sql.encode()).hexdigest()[:10]
    local_name = f"hybridshop_agg__{ex.name}__{table.name}__{digest}"
    local = f"{CATALOG}.{local_name}"
    view = View(
        name=vname,
        file=table.file,
        line=table.line,
        sql_table_name=f"`aggregates.{local_name}`",
        fields=synthetic,
    )
    agg_project = replace(project, views={**project.views, vname: view})
    agg_explore = Explore(name=ex.name, model=ex.model, view_name=vname, file=ex.file, line=ex.line)
    compiled = compile_query(
        agg_project,
        ex.model,
        ex.name,
        [mapping[r] for r in fields],
        filters={mapping[r]: e for r, e in remaining.items()},
        sorts=[f"{mapping[n]} {'desc' if d else 'asc'}" for n, d in base.sorts],
        limit=base.limit,
        pivots=[mapping[p] for p in base.pivots],
        now=now,
        table_map={**(table_map or {}), local_name: local},
        _explore=agg_explore,
    )
    if not compiled.ok or compiled.bigquery_sql is None or compiled.duckdb_sql is None:
        return None
    grain_suffixes = [_ALIGNED[g] for g, _ in groups.values()]
    for literal in _TS_LITERAL.findall(compiled.bigquery_sql):
        if not grain_suffixes or not all(literal.endswith(s) for s in grain_suffixes):
            return None  # a time bound inside one aggregate row: not answerable from it
    columns = {q.column: b.column for q, b in zip(compiled.fields, base.fields, strict=True)}
    header = (
        f"-- aggregate awareness: reads aggregate_table {ex.name}::{table.name} "
        f"({table.file}:{table.line}), materialized once per warehouse copy as {local}\n"
    )
    return AggregatePlan(
        table=table,
        local_table=local,
        materialize_sql=f"CREATE OR REPLACE TABLE {local} AS {select_sql}",
        sql=header + compiled.duckdb_sql,
        columns=columns,
    )
