"""Compiling a dashboard element (or an explore query) into the SQL Looker sends to BigQuery.

The shape is Looker's: ``SELECT dims, measures FROM base LEFT JOIN … WHERE dimension filters
GROUP BY 1, 2 HAVING measure filters ORDER BY … LIMIT 500``, columns aliased ``view_field``,
joins only when a selected, filtered or referenced field needs them, and symmetric aggregates
(``SUM(DISTINCT value + hash(pk)) - SUM(DISTINCT hash(pk))``) for sums, averages and counts of
a view whose rows a join repeats. Pivots and ``fill_fields`` are applied after the query, in
Python (``runner.py``), as a local renderer may (Looker itself fills dates after the SQL too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import sqlglot
from sqlglot import exp

from hybridshop.analytics.lookml import filters as fx
from hybridshop.analytics.lookml.errors import ElementError, FilterExpressionError, UnsupportedError
from hybridshop.analytics.lookml.project import Explore, Field, Join, Project, View
from hybridshop.analytics.lookml.transpile import TranspileError, to_duckdb

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
FILL_TIMEFRAMES = ("minute", "hour", "date", "week", "month", "quarter", "year")
# Looker's built-in value_format_name values, as Excel-style formats.
VALUE_FORMATS = {
    "decimal_0": "#,##0",
    "decimal_1": "#,##0.0",
    "decimal_2": "#,##0.00",
    "decimal_3": "#,##0.000",
    "decimal_4": "#,##0.0000",
    "percent_0": "0%",
    "percent_1": "0.0%",
    "percent_2": "0.00%",
    "percent_3": "0.000%",
    "percent_4": "0.0000%",
    "usd": "$#,##0.00",
    "usd_0": "$#,##0",
    "eur": "€#,##0.00",
    "eur_0": "€#,##0",
    "gbp": "£#,##0.00",
    "gbp_0": "£#,##0",
    "id": "0",
}
_REF = re.compile(r"\$\{([^}]*)\}")
_LIQUID = re.compile(r"\{\{|\{%")
_FANOUT = ("one_to_many", "many_to_many")
_DUP_JOINED = ("many_to_one", "many_to_many")


@dataclass
class FieldInfo:
    """A selected field as the renderer needs it; ``name`` (``view.field``) is the row key."""

    name: str
    label: str
    category: str  # dimension | measure
    type: str  # string | number | yesno | time | tier | count | sum | average | ...
    value_format: str | None = None
    value_format_name: str | None = None
    timeframe: str | None = None
    view_label: str | None = None
    description: str | None = None
    column: str = ""  # the SQL column alias (view_field)

    @property
    def is_measure(self) -> bool:
        return self.category == "measure"

    @property
    def is_numeric(self) -> bool:
        if self.is_measure:
            return True
        if self.type == "number":
            return True
        return self.timeframe in (
            "year",
            "hour_of_day",
            "day_of_week_index",
            "day_of_month",
            "month_num",
            "week_of_year",
        )


@dataclass(frozen=True)
class JoinFact:
    """A property of the warehouse's data under which DuckDB may run a cheaper query that
    returns exactly the same rows (``CompiledQuery.assumed_sql``).

    - ``all_matched``: every row of the explore's base view has its row in the joined view (a
      ``many_to_one``/``one_to_one`` LEFT JOIN on the joined view's primary key). Then the
      LEFT JOIN adds no NULL-extended row and equals an INNER JOIN, which DuckDB runs several
      times faster (its build side may then be either input).
    - ``no_fanout``: no base row matches more than one row of a ``one_to_many`` /
      ``many_to_many`` join, so the join repeats no base row and the base view's counts, sums
      and averages need no ``COUNT(DISTINCT pk)`` / symmetric aggregate.

    ``sql`` (DuckDB) returns one boolean. Both read the whole tables, so a fact that holds
    holds for every filtered subset; they depend on the data only, so a caller computes each
    once per warehouse version (``runner.JoinFacts``). Like Looker's symmetric aggregates they
    take the declared ``primary_key`` to be unique.
    """

    kind: str  # all_matched | no_fanout
    explore: str
    join: str
    sql: str

    def describe(self) -> str:
        if self.kind == "all_matched":
            return f"every {self.explore} row has its {self.join} row"
        return f"no {self.explore} row matches more than one {self.join} row"


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
    sorts: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int = DEFAULT_LIMIT
    filters: dict[str, str] = field(default_factory=dict)  # field -> expression applied
    errors: list[ElementError] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # Datastream tables the query reads
    # DuckDB SQL with the same result when every fact in ``assumes`` holds for the data
    # (``run_query`` checks them, once per warehouse version, when given a ``JoinFacts``)
    assumed_sql: str | None = None
    assumes: list[JoinFact] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.duckdb_sql is not None

    def field_info(self, name: str) -> FieldInfo:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


class _Fail(Exception):
    """One problem of the query being compiled (becomes an ElementError)."""

    def __init__(
        self,
        message: str,
        line: int | None = None,
        unsupported: bool = False,
        file: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.unsupported = unsupported
        self.file = file


# --- SQL snippets -----------------------------------------------------------------------


def _hash(pk: str) -> str:
    """Looker's BigQuery hash of a primary key: 92 bits of MD5 as a NUMERIC, scaled 1e-9."""
    h = f"TO_HEX(MD5(CAST({pk} AS STRING)))"
    return (
        f"(CAST(CAST(CONCAT('0x', SUBSTR({h}, 1, 15)) AS INT64) AS NUMERIC) * 4294967296"
        f" + CAST(CAST(CONCAT('0x', SUBSTR({h}, 16, 8)) AS INT64) AS NUMERIC)) * 0.000000001"
    )


def symmetric_sum(value: str, pk: str) -> str:
    """SUM over the distinct primary keys of a view whose rows a join repeats."""
    h = _hash(pk)
    return (
        "COALESCE(ROUND(COALESCE(CAST((SUM(DISTINCT (CAST(ROUND(COALESCE("
        f"{value}, 0) * (1 / 1000 * 1.0), 9) AS NUMERIC) + {h})) - SUM(DISTINCT {h}))"
        " / (1 / 1000 * 1.0) AS FLOAT64), 0), 6), 0)"
    )


def symmetric_average(value: str, pk: str) -> str:
    h = _hash(pk)
    total = (
        f"(SUM(DISTINCT (CAST(ROUND(COALESCE({value}, 0) * (1 / 1000 * 1.0), 9) AS NUMERIC)"
        f" + {h})) - SUM(DISTINCT {h}))"
    )
    count = f"COUNT(DISTINCT CASE WHEN {value} IS NOT NULL THEN {pk} ELSE NULL END)"
    return (
        f"CASE WHEN {count} = 0 THEN NULL ELSE ROUND(CAST({total} / (1 / 1000 * 1.0) AS FLOAT64)"
        f" / {count}, 6) END"
    )


def timeframe_sql(x: str, timeframe: str) -> str:
    """The SQL Looker emits for a timeframe of a TIMESTAMP expression (no tz conversion)."""
    forms = {
        "raw": x,
        "time": f"FORMAT_TIMESTAMP('%F %T', {x})",
        "minute": f"FORMAT_TIMESTAMP('%F %H:%M', {x})",
        "hour": f"FORMAT_TIMESTAMP('%F %H', {x})",
        "date": f"DATE({x})",
        "week": f"FORMAT_TIMESTAMP('%F', TIMESTAMP_TRUNC({x}, WEEK(MONDAY)))",
        "month": f"FORMAT_TIMESTAMP('%Y-%m', {x})",
        "quarter": f"FORMAT_TIMESTAMP('%Y-%m', TIMESTAMP_TRUNC({x}, QUARTER))",
        "year": f"EXTRACT(YEAR FROM {x})",
        "hour_of_day": f"EXTRACT(HOUR FROM {x})",
        "day_of_week": f"FORMAT_TIMESTAMP('%A', {x})",
        "day_of_week_index": f"MOD((EXTRACT(DAYOFWEEK FROM {x}) - 1) - 1 + 7, 7)",
        "day_of_month": f"EXTRACT(DAY FROM {x})",
        "month_num": f"EXTRACT(MONTH FROM {x})",
        "week_of_year": f"EXTRACT(ISOWEEK FROM {x})",
    }
    return forms[timeframe]


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def tier_labels(tiers: list[float], style: str) -> list[str]:
    """Labels of the len(tiers)+1 buckets, Looker's styles."""
    n = [_fmt_number(t) for t in tiers]
    if style == "integer":
        labels = [f"Below {n[0]}"]
        for i in range(len(tiers) - 1):
            upper = tiers[i + 1] - 1 if float(tiers[i + 1]).is_integer() else tiers[i + 1]
            labels.append(f"{n[i]} to {_fmt_number(upper)}")
        labels.append(f"{n[-1]} or Above")
        return labels
    if style == "relational":
        labels = [f"< {n[0]}"]
        labels += [f">= {n[i]} and < {n[i + 1]}" for i in range(len(tiers) - 1)]
        labels.append(f">= {n[-1]}")
        return labels
    if style == "interval":
        labels = [f"(-inf, {n[0]})"]
        labels += [f"[{n[i]}, {n[i + 1]})" for i in range(len(tiers) - 1)]
        labels.append(f"[{n[-1]}, inf)")
        return labels
    bounds = ["-inf", *n, "inf"]
    return [
        f"T{i:02d} {'(' if i == 0 else '['}{bounds[i]},{bounds[i + 1]})"
        for i in range(len(tiers) + 1)
    ]


def tier_sql(x: str, tiers: list[float], style: str, index: bool = False) -> str:
    labels = tier_labels(tiers, style)
    whens = [
        f"WHEN {x} < {_fmt_number(t)} THEN {i if index else fx.sql_string(labels[i])}"
        for i, t in enumerate(tiers)
    ]
    last = len(tiers) if index else fx.sql_string(labels[-1])
    null = "NULL" if index else "'Undefined'"
    return f"CASE WHEN {x} IS NULL THEN {null} {' '.join(whens)} ELSE {last} END"


# --- the compiler -----------------------------------------------------------------------


class _Query:
    def __init__(self, project: Project, explore: Explore, now: datetime | None) -> None:
        self.project = project
        self.explore = explore
        self.now = now
        self.aliases: dict[str, View] = {}
        base = project.views.get(explore.view_name)
        if base is None:
            raise _Fail(f"explore {explore.name!r}: view {explore.view_name!r} is not defined")
        self.base_alias = explore.name
        self.aliases[explore.name] = base
        for j in explore.joins.values():
            v = project.views.get(j.view_name)
            if v is not None:
                self.aliases[j.name] = v
        self.used: set[str] = {self.base_alias}
        self._dim_cache: dict[str, str] = {}
        self.hashed_pks: set[str] = set()  # primary keys in symmetric aggregates
        self.local_rewrites: list[tuple[str, str]] = []  # BigQuery text -> DuckDB-only text
        self._stack: list[str] = []

    # field lookup ------------------------------------------------------------------
    def resolve(self, ref: str, context_alias: str | None = None) -> tuple[str, Field]:
        if "." in ref:
            alias, _, name = ref.partition(".")
        elif context_alias is not None:
            alias, name = context_alias, ref
        else:
            raise _Fail(f"field {ref!r} must be written view.field")
        view = self.aliases.get(alias)
        if view is None:
            raise _Fail(
                f"unknown field {ref!r}: explore {self.explore.name!r} has no view {alias!r}"
            )
        f = view.fields.get(name)
        if f is None:
            raise _Fail(f"unknown field {alias}.{name}: view {view.name!r} has no such field")
        broken = self.project.broken.get(f.ref)
        if broken is not None:
            raise _Fail(f"field {alias}.{name} cannot be compiled ({broken})", unsupported=True)
        return alias, f

    # substitution ------------------------------------------------------------------
    def substitute(self, sql: str, alias: str) -> str:
        def repl(m: re.Match[str]) -> str:
            inner = m.group(1).strip()
            if inner == "TABLE":
                self.used.add(alias)
                return alias
            if inner.endswith(".SQL_TABLE_NAME"):
                view = self.aliases.get(inner.split(".")[0])
                if view is None or view.sql_table_name is None:
                    raise _Fail(f"unknown reference ${{{inner}}}")
                return view.sql_table_name
            ref_alias, f = self.resolve(inner, alias)
            self.used.add(ref_alias)
            if f.is_measure:
                return f"({self.measure_sql(ref_alias, f)})"
            return self.dimension_sql(ref_alias, f)

        return _REF.sub(repl, sql)

    def _guard(self, key: str) -> None:
        if key in self._stack:
            raise _Fail(f"circular reference: {' -> '.join([*self._stack, key])}")

    def dimension_sql(self, alias: str, f: Field) -> str:
        key = f"{alias}.{f.name}"
        if key in self._dim_cache:
            return self._dim_cache[key]
        self._guard(key)
        self._stack.append(key)
        try:
            if f.category == "filter":
                raise _Fail(f"{key} is a filter-only field", unsupported=True)
            sql = f.sql if f.sql is not None else f"${{TABLE}}.{f.group or f.name}"
            base = self.substitute(sql, alias)
            self.used.add(alias)
            if f.timeframe is not None:
                out = timeframe_sql(self._as_timestamp(base, f), f.timeframe)
            elif f.type == "yesno":
                out = f"(CASE WHEN {base} THEN 'Yes' ELSE 'No' END)"
            elif f.type == "tier":
                if not f.tiers:
                    raise _Fail(f"{key}: a tier dimension needs tiers")
                out = tier_sql(base, f.tiers, f.style)
            else:
                out = base
        finally:
            self._stack.pop()
        self._dim_cache[key] = out
        return out

    def raw_time_sql(self, alias: str, f: Field) -> str:
        """The TIMESTAMP a timeframe field is computed from (what date filters compare)."""
        sql = f.sql if f.sql is not None else f"${{TABLE}}.{f.group or f.name}"
        return self._as_timestamp(self.substitute(sql, alias), f)

    @staticmethod
    def _as_timestamp(base: str, f: Field) -> str:
        dt = (f.datatype or "timestamp").lower()
        if dt == "epoch":
            return f"TIMESTAMP_SECONDS({base})"
        if dt in ("date", "datetime", "yyyymmdd"):
            if dt == "yyyymmdd":
                return f"TIMESTAMP(PARSE_DATE('%Y%m%d', CAST({base} AS STRING)))"
            return f"TIMESTAMP({base})"
        return base

    def fanned_out(self, alias: str) -> bool:
        """Whether the query's joins repeat the rows of ``alias`` (symmetric aggregates)."""
        joins = [j for j in self.explore.joins.values() if j.name in self.used]
        if alias == self.base_alias:
            return any(j.relationship in _FANOUT for j in joins)
        own = self.explore.joins.get(alias)
        if own is not None and own.relationship in _DUP_JOINED:
            return True
        return any(j.relationship in _FANOUT for j in joins if j.name != alias)

    def has_joins(self) -> bool:
        return any(a != self.base_alias for a in self.used)

    def pk_sql(self, alias: str) -> str:
        view = self.aliases[alias]
        pk = view.primary_key()
        if pk is None:
            raise _Fail(
                f"view {view.name!r} has no primary_key: needed for counts and symmetric "
                "aggregates across joins"
            )
        return self.dimension_sql(alias, pk)

    def measure_sql(self, alias: str, f: Field) -> str:
        key = f"{alias}.{f.name}"
        self._guard(key)
        self._stack.append(key)
        try:
            return self._measure_sql(alias, f)
        finally:
            self._stack.pop()

    def _measure_condition(self, alias: str, f: Field) -> str | None:
        conds = []
        for ref, expr in f.filters:
            fa, ff = self.resolve(ref, alias)
            self.used.add(fa)
            cond = self.condition(fa, ff, expr)
            if cond is not None:
                conds.append(cond)
        return " AND ".join(conds) if conds else None

    def _measure_sql(self, alias: str, f: Field) -> str:
        self.used.add(alias)
        if f.type == "number":
            if f.sql is None:
                raise _Fail(f"{f.ref}: a type: number measure needs sql")
            return self.substitute(f.sql, alias)
        cond = self._measure_condition(alias, f)
        value = self.substitute(f.sql, alias) if f.sql is not None else None
        if f.type == "count":
            if value is not None:
                raise _Fail(f"{f.ref}: a count measure takes no sql (use count_distinct)")
            # counted after the query's joins are known: see finish()
            return f"__COUNT__({alias}|{cond or ''})"
        if value is None:
            raise _Fail(f"{f.ref}: a {f.type} measure needs sql")
        if cond is not None:
            value = f"CASE WHEN {cond} THEN {value} ELSE NULL END"
        if f.type == "count_distinct":
            return f"COUNT(DISTINCT {value})"
        if f.type in ("min", "max"):
            return f"{f.type.upper()}({value})"
        if f.type in ("sum", "average"):
            return f"__{f.type.upper()}__({alias}|{value})"
        if f.type in ("median", "percentile"):
            pct = 50.0 if f.type == "median" else (f.percentile or 50.0)
            return f"__QUANTILE__({alias}|{round(pct * 10)}|{value})"
        raise _Fail(f"{f.ref}: measure type {f.type!r} is not supported", unsupported=True)

    def finish(self, sql: str) -> str:
        """Resolve the join-dependent measure forms once every join of the query is known."""
        out = []
        i = 0
        pattern = re.compile(r"__(COUNT|SUM|AVERAGE|QUANTILE)__\(")
        while True:
            m = pattern.search(sql, i)
            if m is None:
                out.append(sql[i:])
                break
            out.append(sql[i : m.start()])
            depth = 1
            j = m.end()
            quote: str | None = None
            while j < len(sql) and depth:
                ch = sql[j]
                if quote is not None:
                    if ch == "\\":
                        j += 1
                    elif ch == quote:
                        quote = None
                elif ch in "'\"":
                    quote = ch
                elif ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                j += 1
            body = self.finish(sql[m.end() : j - 1])
            out.append(self._finish_one(m.group(1), body))
            i = j
        return "".join(out)

    def _finish_one(self, kind: str, body: str) -> str:
        alias, _, rest = body.partition("|")
        if kind == "COUNT":
            cond = rest
            if not self.has_joins():
                return f"COUNT(CASE WHEN {cond} THEN 1 ELSE NULL END)" if cond else "COUNT(*)"
            pk = self.pk_sql(alias)
            value = f"CASE WHEN {cond} THEN {pk} ELSE NULL END" if cond else pk
            sql = f"COUNT(DISTINCT {value})"
            if not self.fanned_out(alias):
                # no join repeats this view's rows: each primary key appears at most once, so
                # DuckDB counts without the (costly) DISTINCT; the BigQuery text stays Looker's
                self.local_rewrites.append((sql, f"COUNT({value})"))
            return sql
        if kind == "QUANTILE":
            k, _, value = rest.partition("|")
            if self.fanned_out(alias):
                raise _Fail(
                    f"a median/percentile of {self.aliases[alias].name!r} across a join that "
                    "repeats its rows has no symmetric form: select it without that join",
                    unsupported=True,
                )
            return f"APPROX_QUANTILES({value}, 1000)[OFFSET({k})]"
        value = rest
        if self.fanned_out(alias):
            pk = self.pk_sql(alias)
            self.hashed_pks.add(pk)
            return symmetric_sum(value, pk) if kind == "SUM" else symmetric_average(value, pk)
        return f"COALESCE(SUM({value}), 0)" if kind == "SUM" else f"AVG({value})"

    # filters -----------------------------------------------------------------------
    def condition(self, alias: str, f: Field, expr: str) -> str | None:
        try:
            if f.timeframe is not None or f.type in ("time", "date"):
                column = (
                    self.raw_time_sql(alias, f)
                    if f.timeframe is not None
                    else self.dimension_sql(alias, f)
                )
                return fx.date_condition(column, expr, self.now)
            column = self.measure_sql(alias, f) if f.is_measure else self.dimension_sql(alias, f)
            if f.is_measure or f.type == "number":
                return fx.number_condition(column, expr)
            if f.type == "yesno":
                return fx.yesno_condition(column, expr)
            return fx.string_condition(column, expr)
        except FilterExpressionError as exc:
            raise _Fail(f"bad filter expression for {alias}.{f.name}: {exc}") from None

    # joins -------------------------------------------------------------------------
    def join_clauses(self) -> list[str]:
        """Joins needed by the used aliases, closing over the views each ON clause names."""
        needed = set(self.used)
        changed = True
        on_sql: dict[str, str] = {}
        while changed:
            changed = False
            for j in self.explore.joins.values():
                if j.name in needed and j.name not in on_sql:
                    before = set(self.used)
                    try:
                        on_sql[j.name] = self.substitute(j.sql_on or "TRUE", j.name)
                    except _Fail as exc:
                        raise _Fail(
                            f"join {j.name!r} of explore {self.explore.name!r}: {exc.message}",
                            line=j.line,
                            file=j.file,
                        ) from None
                    for r in j.required_joins:
                        self.used.add(r)
                    new = self.used - before
                    if new - needed:
                        needed |= new
                        changed = True
            if needed != set(self.used):
                needed |= self.used
                changed = True
        clauses = []
        for j in self.explore.joins.values():
            if j.name not in needed:
                continue
            view = self.aliases[j.name]
            kind = {
                "left_outer": "LEFT JOIN",
                "inner": "INNER JOIN",
                "full_outer": "FULL OUTER JOIN",
                "cross": "CROSS JOIN",
            }[j.type]
            on = "" if j.type == "cross" else f" ON {on_sql[j.name]}"
            clauses.append(f"{kind} {view.sql_table_name} AS {j.name}{on}")
        return clauses


def _column(ref: str) -> str:
    return ref.replace(".", "_")


def _info(alias: str, f: Field, view: View) -> FieldInfo:
    return FieldInfo(
        name=f"{alias}.{f.name}",
        label=f.display_label(),
        category="measure" if f.is_measure else "dimension",
        type=f.type,
        value_format=f.value_format or VALUE_FORMATS.get(f.value_format_name or ""),
        value_format_name=f.value_format_name,
        timeframe=f.timeframe,
        view_label=view.label or " ".join(w.capitalize() for w in view.name.split("_")),
        description=f.description,
        column=_column(f"{alias}.{f.name}"),
    )


def _parse_sort(text: str) -> tuple[str, bool]:
    parts = text.split()
    if len(parts) == 1:
        return parts[0], False
    if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
        return parts[0], parts[1].lower() == "desc"
    raise _Fail(f"sort {text!r}: expected 'view.field' or 'view.field asc|desc'")


def compile_query(
    project: Project,
    model: str | None,
    explore: str,
    fields: list[str],
    *,
    filters: Mapping[str, str] | None = None,
    sorts: list[str] | None = None,
    limit: int | None = None,
    pivots: list[str] | None = None,
    fill_fields: list[str] | None = None,
    now: datetime | None = None,
    table_map: Mapping[str, str] | None = None,
    where: tuple[str, int, str] = ("", 0, ""),
    lines: Mapping[str, int] | None = None,
    dashboard: str | None = None,
    element: str | None = None,
    filter_sources: Mapping[str, tuple[str, int, str]] | None = None,
    _explore: Explore | None = None,
) -> CompiledQuery:
    """Compile an explore query (``fields`` as ``view.field``) to BigQuery and DuckDB SQL.

    ``where`` = (file, line, element label) and ``lines`` (element key → line) place the
    errors (``filter_sources``: field -> (file, line, name) of the dashboard filter that set
    it); ``table_map`` maps Datastream table names to local DuckDB tables."""
    file, line, label = where
    lines = lines or {}
    out = CompiledQuery(dashboard=dashboard, element=element, model=model, explore=explore)
    out.pivots = list(pivots or [])
    out.fill_fields = list(fill_fields or [])

    def fail(exc: _Fail, key: str | None = None) -> CompiledQuery:
        cls = UnsupportedError if exc.unsupported else ElementError
        at = exc.line if exc.line is not None else lines.get(key or "", line)
        out.errors.append(cls(exc.file or file, at, label, exc.message))
        return out

    ex = _explore if _explore is not None else project.explore(model, explore)
    if ex is None:
        where_m = f" in model {model!r}" if model else ""
        return fail(_Fail(f"unknown explore {explore!r}{where_m}"), "explore")
    if not fields:
        return fail(_Fail("the query selects no fields"), "fields")
    try:
        q = _Query(project, ex, now)
    except _Fail as exc:
        return fail(exc, "explore")

    select: list[str] = []
    dims: list[int] = []
    measures: list[tuple[str, str]] = []
    sort_keys: dict[str, str] = {}
    for ref in fields:
        try:
            alias, f = q.resolve(ref)
            sql = q.measure_sql(alias, f) if f.is_measure else q.dimension_sql(alias, f)
        except _Fail as exc:
            fail(exc, "fields")
            continue
        if f.category == "parameter":
            fail(_Fail(f"{ref}: parameters are not supported", unsupported=True), "fields")
            continue
        col = _column(f"{alias}.{f.name}")
        select.append(f"{sql} AS {col}")
        info = _info(alias, f, q.aliases[alias])
        out.fields.append(info)
        if not f.is_measure:
            dims.append(len(select))
            if f.type == "tier":
                sort_keys[info.name] = (
                    f"MIN({tier_sql(q.substitute(f.sql or '', alias), f.tiers, f.style, index=True)})"
                )
        else:
            measures.append((info.name, col))
    if out.errors:
        return out
    selected = {f.name for f in out.fields}
    for p in out.pivots:
        if p not in selected:
            fail(_Fail(f"pivot {p!r} is not one of the selected fields"), "pivots")
        elif out.field_info(p).is_measure:
            fail(_Fail(f"pivot {p!r} is a measure: only dimensions pivot"), "pivots")
    for ff in out.fill_fields:
        ff_info = out.field_info(ff) if ff in selected else None
        if ff_info is None:
            fail(_Fail(f"fill_fields {ff!r} is not one of the selected fields"), "fill_fields")
        elif ff_info.timeframe not in FILL_TIMEFRAMES:
            fail(
                _Fail(
                    f"fill_fields {ff!r}: only date timeframes ({', '.join(FILL_TIMEFRAMES)}) "
                    "can be filled"
                ),
                "fill_fields",
            )

    where_sql: list[str] = []
    having_sql: list[str] = []
    for ref, expr in (filters or {}).items():
        try:
            alias, f = q.resolve(ref)
            cond = q.condition(alias, f, expr)
        except _Fail as exc:
            source = (filter_sources or {}).get(ref)
            if source is not None and exc.file is None:
                exc.file, exc.line = source[0], source[1]
                exc.message = f"{exc.message} (dashboard filter {source[2]!r})"
            fail(exc, "filters")
            continue
        if cond is None:
            continue
        out.filters[f"{alias}.{f.name}"] = expr
        (having_sql if f.is_measure else where_sql).append(cond)
    if ex.sql_always_where:
        try:
            where_sql.insert(0, q.substitute(ex.sql_always_where, q.base_alias))
        except _Fail as exc:
            exc.line = ex.line
            return fail(exc)

    # sorts: as given, else Looker's default (a time dimension desc, else first measure desc)
    try:
        parsed = [_parse_sort(s) for s in (sorts or [])]
    except _Fail as exc:
        return fail(exc, "sorts")
    for name, _desc in parsed:
        if name not in selected:
            fail(_Fail(f"sort {name!r} is not one of the selected fields"), "sorts")
    if out.errors:
        return out
    if not parsed:
        time_dims = [
            f.name
            for f in out.fields
            if not f.is_measure and f.timeframe is not None and f.name not in out.pivots
        ]
        if time_dims:
            parsed = [(time_dims[0], True)]
        elif measures:
            parsed = [(measures[0][0], True)]
        elif out.fields:
            parsed = [(out.fields[0].name, False)]
    out.sorts = parsed

    limit = DEFAULT_LIMIT if limit is None else limit
    if limit < 1 or limit > MAX_LIMIT:
        return fail(_Fail(f"limit {limit}: must be between 1 and {MAX_LIMIT}"), "limit")
    out.limit = limit

    try:
        joins = q.join_clauses()
        base_view = q.aliases[q.base_alias]
        select_sql = [q.finish(s) for s in select]
        where_final = [q.finish(w) for w in where_sql]
        having_final = [q.finish(h) for h in having_sql]
    except _Fail as exc:
        return fail(exc, "fields")

    order_terms = []
    names = [f.name for f in out.fields]
    for name, desc in parsed:
        key = sort_keys.get(name, str(names.index(name) + 1))
        order_terms.append(f"{key} {'DESC' if desc else 'ASC'}")

    parts = ["SELECT", "    " + ",\n    ".join(select_sql)]
    parts.append(f"FROM {base_view.sql_table_name} AS {q.base_alias}")
    parts.extend(joins)
    if where_final:
        parts.append("WHERE " + "\n    AND ".join(f"({w})" for w in where_final))
    if (dims and measures) or (dims and not measures):
        parts.append("GROUP BY " + ", ".join(str(i) for i in dims))
    if having_final:
        parts.append("HAVING " + "\n    AND ".join(f"({h})" for h in having_final))
    if order_terms:
        parts.append("ORDER BY " + ", ".join(order_terms))
    if not out.pivots:
        # pivoted queries: the limit counts pivoted rows, applied after the query
        parts.append(f"LIMIT {limit}")
    out.bigquery_sql = "\n".join(parts)
    out.tables = sorted(
        {
            (q.aliases[a].sql_table_name or "").strip("`").split(".")[-1]
            for a in q.used
            if a in q.aliases
        }
    )
    local = out.bigquery_sql
    for pk in q.hashed_pks:
        local = local.replace(_hash(pk), f"LOOKER_PK_HASH({pk})")
    for looker_form, local_form in q.local_rewrites:
        local = local.replace(looker_form, local_form)
    try:
        out.duckdb_sql = to_duckdb(local, table_map)
    except TranspileError as exc:
        out.errors.append(ElementError(file, line, label, str(exc)))
    if out.ok and _explore is None:
        facts = _join_facts(project, ex, q.used, now, table_map)
        if facts:
            variant = compile_query(
                project,
                model,
                explore,
                fields,
                filters=filters,
                sorts=sorts,
                limit=limit,
                pivots=pivots,
                fill_fields=fill_fields,
                now=now,
                table_map=table_map,
                where=where,
                lines=lines,
                dashboard=dashboard,
                element=element,
                filter_sources=filter_sources,
                _explore=_assuming(ex, facts),
            )
            if variant.ok and variant.duckdb_sql != out.duckdb_sql:
                out.assumed_sql, out.assumes = variant.duckdb_sql, facts
    return out


def _assuming(ex: Explore, facts: list[JoinFact]) -> Explore:
    """The explore as it behaves on data where ``facts`` hold (local execution only)."""
    joins = dict(ex.joins)
    for fact in facts:
        j = joins[fact.join]
        if fact.kind == "all_matched":
            joins[j.name] = replace(j, type="inner")
        else:
            one = "one_to_one" if j.relationship == "one_to_many" else "many_to_one"
            joins[j.name] = replace(j, relationship=one)
    return replace(ex, joins=joins)


def _join_facts(
    project: Project,
    ex: Explore,
    used: set[str],
    now: datetime | None,
    table_map: Mapping[str, str] | None,
) -> list[JoinFact]:
    """The facts that would let the query's joins run cheaper (see ``JoinFact``)."""
    facts: list[JoinFact] = []
    for j in ex.joins.values():
        if j.name not in used or j.type not in ("left_outer", "inner") or not j.sql_on:
            continue
        try:
            fact = _join_fact(project, ex, j, now)
        except (_Fail, sqlglot.errors.SqlglotError):
            continue
        if fact is not None:
            kind, sql = fact
            try:
                local = to_duckdb(sql, table_map)
            except TranspileError:
                continue
            facts.append(JoinFact(kind, ex.name, j.name, local))
    return facts


def _equality_with(on: str, key: str, other_alias: str) -> str | None:
    """For ``on`` of the form ``key = e`` (either order) where ``e`` reads only columns of
    ``other_alias``: ``e`` (BigQuery text); else None."""
    key_text = sqlglot.parse_one(key, read="bigquery").sql("bigquery")
    tree = sqlglot.parse_one(on, read="bigquery")
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if not isinstance(tree, exp.EQ):
        return None
    sides = [tree.this, tree.expression]
    texts = [side.sql("bigquery") for side in sides]
    if key_text not in texts:
        return None
    other = sides[1 - texts.index(key_text)]
    columns = list(other.find_all(exp.Column))
    if not columns or any(c.table != other_alias for c in columns):
        return None
    return other.sql("bigquery")


def _join_fact(
    project: Project, ex: Explore, j: Join, now: datetime | None
) -> tuple[str, str] | None:
    q = _Query(project, ex, now)
    q.used = set()
    on = q.substitute(j.sql_on or "", j.name)
    if q.used - {q.base_alias, j.name} or q.base_alias not in q.used:
        return None  # the ON clause involves a third view: no fact of two tables decides it
    base, view = q.aliases[q.base_alias], q.aliases[j.name]
    if not base.sql_table_name or not view.sql_table_name:
        return None
    joined = (
        f"FROM {base.sql_table_name} AS {q.base_alias} "
        f"INNER JOIN {view.sql_table_name} AS {j.name} ON {on}"
    )
    if j.relationship in _FANOUT:
        if base.primary_key() is None:
            return None
        pk = q.pk_sql(q.base_alias)
        other = _equality_with(on, pk, j.name)
        if other is not None:
            # ON base.pk = j.x: no base row matches two j rows when j.x is unique — one
            # table, no join (about half the time of the general form)
            return "no_fanout", (
                f"SELECT COUNT({other}) = COUNT(DISTINCT {other}) "
                f"FROM {view.sql_table_name} AS {j.name}"
            )
        return "no_fanout", f"SELECT COUNT(*) = COUNT(DISTINCT {pk}) {joined}"
    if view.primary_key() is None or j.type != "left_outer":
        return None
    # each base row matches at most one joined row only when the ON clause is an equality
    # with the joined view's primary key: then "as many joined rows as base rows" = "all
    # matched"
    if _equality_with(on, q.pk_sql(j.name), q.base_alias) is None:
        return None
    return (
        "all_matched",
        f"SELECT (SELECT COUNT(*) FROM {base.sql_table_name} AS {q.base_alias}) = "
        f"(SELECT COUNT(*) {joined})",
    )


def _check_ref(project: Project, model: str | None, explore: str, ref: str) -> str | None:
    """Why ``ref`` is not a field of the explore (None when it is)."""
    ex = project.explore(model, explore)
    if ex is None:
        return f"unknown explore {explore!r}"
    alias, _, name = ref.partition(".")
    view_name = (
        ex.view_name
        if alias == ex.name
        else (ex.joins[alias].view_name if alias in ex.joins else None)
    )
    if view_name is None:
        return f"unknown field {ref!r}: explore {explore!r} has no view {alias!r}"
    view = project.views.get(view_name)
    if view is None or name not in view.fields:
        return f"unknown field {ref!r}: view {view_name!r} has no such field"
    return None


UNSUPPORTED_ELEMENT_KEYS = {
    "dynamic_fields": "table calculations and custom fields (dynamic_fields) are not supported",
    "merged_queries": "merged results (merged_queries) are not supported",
    "query": "element `query:` blocks (LookML-defined dashboards' shared queries) are not supported",
    "look_id": "elements that show a saved Look (look_id) are not supported",
}


def compile_element(
    project: Project,
    dashboard: str,
    element_name: str,
    filters: Mapping[str, str] | None = None,
    now: datetime | None = None,
    table_map: Mapping[str, str] | None = None,
) -> CompiledQuery:
    """Compile one dashboard element with the dashboard's filter values (see the package doc)."""
    dash = project.dashboards.get(dashboard)
    if dash is None:
        raise KeyError(f"no dashboard {dashboard!r}")
    el = dash.element(element_name)
    label = f"{dashboard}/{element_name}"
    out = CompiledQuery(
        dashboard=dashboard, element=element_name, model=el.model, explore=el.explore
    )
    if el.type == "text" or (el.explore is None and not el.fields):
        return out  # a text tile: nothing to run
    for key, message in UNSUPPORTED_ELEMENT_KEYS.items():
        if key in el.raw:
            out.errors.append(UnsupportedError(el.file, el.line_of(key), label, message))
    for key in ("filters", "fields", "sorts", "listen"):
        if _LIQUID.search(str(el.raw.get(key) or "")):
            out.errors.append(
                UnsupportedError(
                    el.file, el.line_of(key), label, f"Liquid templates in {key} are not supported"
                )
            )
    if el.explore is None:
        out.errors.append(
            ElementError(el.file, el.line, label, "element has fields but no explore")
        )
    if out.errors:
        return out
    assert el.explore is not None
    values = dict(filters or {})
    applied: dict[str, str] = dict(el.filters)
    sources: dict[str, tuple[str, int, str]] = {}
    errors: list[ElementError] = []
    for fname, target in el.listen.items():
        df = dash.filter(fname)
        if df is None:
            errors.append(
                ElementError(
                    el.file,
                    el.line_of("listen"),
                    label,
                    f"listens to {fname!r}, which is not a filter of this dashboard",
                )
            )
            continue
        problem = _check_ref(project, el.model, el.explore, target)
        if problem is not None:
            errors.append(
                ElementError(el.file, el.line_of("listen"), label, f"listen {fname!r}: {problem}")
            )
            continue
        expr = values.get(fname, df.default_value)
        if expr.strip() == "":
            continue
        applied[target] = expr  # the dashboard filter overrides the tile's own on that field
        sources[target] = (df.file, df.line, df.name)
    if errors:
        out.errors = errors
        return out
    result = compile_query(
        project,
        el.model,
        el.explore,
        el.fields,
        filters=applied,
        sorts=el.sorts,
        limit=el.limit,
        pivots=el.pivots,
        fill_fields=el.fill_fields,
        now=now,
        table_map=table_map,
        where=(el.file, el.line, label),
        lines=el.lines,
        dashboard=dashboard,
        element=element_name,
        filter_sources=sources,  # a bad dashboard filter value points at that filter
    )
    return result
