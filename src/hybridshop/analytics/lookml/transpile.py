"""BigQuery SQL → DuckDB SQL: sqlglot plus the rewrites sqlglot still gets wrong.

Measured with sqlglot 30.31 and DuckDB 2.0 (``shared/reference/looker.md``); each rewrite is
applied to the BigQuery AST before ``.sql("duckdb")``:

- ``EXTRACT(DAYOFWEEK …)``: BigQuery 1 = Sunday, DuckDB 0 = Sunday → ``+ 1``.
- ``EXTRACT(ISOWEEK …)`` errors in DuckDB → DuckDB's ``WEEK`` (ISO); BigQuery's ``WEEK``
  (Sunday-based, days before the first Sunday are week 0) → ``strftime(x, '%U')``.
- ``FORMAT_TIMESTAMP(fmt, x, zone)``: the zone is dropped by sqlglot → ``x AT TIME ZONE``;
  ``%E*S`` / ``%E6S`` / ``%E3S`` (fractional seconds) → ``%S.%f`` / ``%S.%g``.
- ``NUMERIC`` becomes ``DECIMAL(18,3)`` and overflows the symmetric-aggregate sum →
  ``DECIMAL(38,9)`` (BigQuery's NUMERIC precision); ``BIGNUMERIC`` likewise.
- ``NUMERIC * 0.000000001`` (Looker's scaled primary-key hash): DuckDB widens the scale to 18
  and the SUM(DISTINCT …) of a few dozen hashes overflows → cast back to ``DECIMAL(38,9)``,
  the scale BigQuery's NUMERIC keeps.
- ``TIMESTAMP_MILLIS/SECONDS/MICROS`` become naive ``EPOCH_MS`` …, and LookML wraps them in
  ``CAST(… AS TIMESTAMP)`` = DuckDB TIMESTAMPTZ, which costs ~300 ns a row (ICU). With the
  session in UTC a naive timestamp holds the same instant and truncates and formats the same,
  so the cast is dropped; only ``AT TIME ZONE`` needs the aware type, and its operand is cast
  to TIMESTAMPTZ explicitly. A comparison of ``EPOCH_MS(x)`` with a timestamp literal becomes
  one of ``x`` with the literal's epoch milliseconds (monotonic, and it prunes row groups).
- ``APPROX_QUANTILES(x, n)[OFFSET(k)]`` (an array of n+1 quantiles) → ``QUANTILE_DISC(x, k/n)``
  (exact locally, a value of the data like BigQuery's).
- ``LIKE`` gets ``ESCAPE '\\'``: BigQuery escapes wildcards with a backslash, DuckDB only
  when told.
- ``TIMESTAMP('2024-01-01 00:00:00')`` (a literal without zone) → a naive ``TIMESTAMP``
  literal: the session is UTC, so it is the same instant, and comparing the warehouse's
  naive UTC columns with it keeps DuckDB's zone-map pruning instead of casting every row.
- ``LOOKER_PK_HASH(pk)`` (what the compiler puts where Looker's MD5-based primary-key hash
  stands, see ``compiler.symmetric_sum``) → DuckDB's 64-bit ``hash(pk)`` scaled the same way:
  the symmetric-aggregate arithmetic is unchanged, the hash is ~10x cheaper than MD5 → hex
  → 2 x BIGINT. Looker's MD5 form itself also runs (the DECIMAL fixes above).
- `` `project.dataset.table` `` → the local table (``table_map``, default ``main.<table>``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import cast

import sqlglot
from sqlglot import exp


class TranspileError(ValueError):
    """BigQuery SQL that sqlglot cannot parse or DuckDB cannot express."""


def _fix(node: exp.Expression, table_map: Mapping[str, str] | None) -> exp.Expression:
    if isinstance(node, exp.Table) and node.name:
        if node.args.get("db") or node.args.get("catalog"):
            local = (table_map or {}).get(node.name, node.name)
            schema, _, name = local.rpartition(".")
            new = exp.table_(name, db=schema or None, quoted=False)
            alias = node.args.get("alias")
            if alias is not None:
                new.set("alias", alias)
            return new
        return node
    if isinstance(node, exp.Extract):
        unit = node.this.name.upper() if isinstance(node.this, exp.Var) else ""
        if unit == "DAYOFWEEK":
            return exp.Paren(this=exp.Add(this=node.copy(), expression=exp.Literal.number(1)))
        if unit == "ISOWEEK":
            return exp.Extract(this=exp.var("WEEK"), expression=node.expression)
        if unit == "WEEK":
            return exp.Cast(
                this=exp.Anonymous(
                    this="STRFTIME",
                    expressions=[node.expression, exp.Literal.string("%U")],
                ),
                to=exp.DataType.build("INT"),
            )
        return node
    if isinstance(node, exp.TimeToStr):
        fmt = node.args.get("format")
        if isinstance(fmt, exp.Literal):
            text = (
                fmt.this.replace("%E*S", "%S.%f").replace("%E6S", "%S.%f").replace("%E3S", "%S.%g")
            )
            node.set("format", exp.Literal.string(text))
        zone = node.args.get("zone")
        if zone is not None:
            inner = node.this
            if isinstance(inner, exp.TsOrDsToTimestamp):
                inner = inner.this
            aware = exp.Cast(this=inner, to=exp.DataType.build("TIMESTAMPTZ"))
            node.set("zone", None)
            node.set("this", exp.AtTimeZone(this=aware, zone=zone))
        return node
    if isinstance(node, exp.DataType) and node.this in (
        exp.DataType.Type.DECIMAL,
        exp.DataType.Type.BIGDECIMAL,
    ):
        if not node.expressions:
            return exp.DataType.build("DECIMAL(38, 9)")
        if node.this == exp.DataType.Type.BIGDECIMAL:
            return exp.DataType.build("DECIMAL(38, 9)")
        return node
    if (
        isinstance(node, exp.Cast)
        and isinstance(node.this, exp.UnixToTime)
        and node.to.this in (exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMP)
    ):
        return node.this.copy()
    if isinstance(node, exp.AtTimeZone) and not (
        isinstance(node.this, exp.Cast) and node.this.to.this == exp.DataType.Type.TIMESTAMPTZ
    ):
        node.set("this", exp.Cast(this=node.this, to=exp.DataType.build("TIMESTAMPTZ")))
        return node
    if isinstance(node, exp.Bracket) and isinstance(node.this, exp.ApproxQuantiles):
        aq = node.this
        n = aq.expression
        if len(node.expressions) == 1 and isinstance(n, exp.Literal):
            k = node.expressions[0]
            if isinstance(k, exp.Literal):
                # OFFSET(k) is 0-based into n+1 quantiles: the k/n quantile
                fraction = int(k.this) / int(n.this)
                return exp.Anonymous(
                    this="QUANTILE_DISC",
                    expressions=[aq.this, exp.Literal.number(round(fraction, 9))],
                )
        raise TranspileError("APPROX_QUANTILES needs literal bucket and offset numbers")
    if (
        isinstance(node, exp.Timestamp)
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
        and node.args.get("zone") is None
        and not re.search(r"([+-]\d{2}(:?\d{2})?|Z|UTC|[A-Za-z]+/[A-Za-z_]+)\s*$", node.this.this)
    ):
        return exp.Cast(this=node.this.copy(), to=exp.DataType.build("TIMESTAMP"))
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "LOOKER_PK_HASH":
        (pk,) = node.expressions
        hashed = exp.Cast(
            this=exp.Anonymous(this="hash", expressions=[pk.copy()]),
            to=exp.DataType.build("DECIMAL(38, 0)"),
        )
        return exp.Cast(
            this=exp.Mul(this=hashed, expression=exp.Literal.number("0.000000001")),
            to=exp.DataType.build("DECIMAL(38, 9)"),
        )
    if isinstance(node, exp.Like) and not isinstance(node.parent, exp.Escape):
        return exp.Escape(this=node.copy(), expression=exp.Literal.string("\\"))
    return node


_CMP = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ)
_FLIP = {
    exp.GT: exp.LT,
    exp.GTE: exp.LTE,
    exp.LT: exp.GT,
    exp.LTE: exp.GTE,
    exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
}


def _naive_literal_ms(node: exp.Expression) -> int | None:
    if (
        isinstance(node, exp.Cast)
        and node.to.this == exp.DataType.Type.TIMESTAMP
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
    ):
        from datetime import UTC, datetime

        try:
            ts = datetime.fromisoformat(node.this.this).replace(tzinfo=UTC)
        except ValueError:
            return None
        return int(ts.timestamp() * 1000)
    return None


def _is_epoch_ms(node: exp.Expression) -> bool:
    scale = node.args.get("scale") if isinstance(node, exp.UnixToTime) else None
    return isinstance(scale, exp.Literal) and scale.this == "3"


def _fix_epoch_compare(node: exp.Expression) -> exp.Expression:
    if isinstance(node, _CMP):
        left, right = node.this, node.expression
        ms = _naive_literal_ms(right)
        if _is_epoch_ms(left) and ms is not None:
            same = type(node)(this=left.this.copy(), expression=exp.Literal.number(ms))
            return cast(exp.Expression, same)
        ms = _naive_literal_ms(left)
        if _is_epoch_ms(right) and ms is not None:
            flipped = _FLIP[type(node)](this=right.this.copy(), expression=exp.Literal.number(ms))
            return cast(exp.Expression, flipped)
    return node


def _fix_scale(node: exp.Expression) -> exp.Expression:
    if (
        isinstance(node, exp.Mul)
        and isinstance(node.expression, exp.Literal)
        and node.expression.this == "0.000000001"
        and not isinstance(node.parent, exp.Cast)
    ):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DECIMAL(38, 9)"))
    return node


def to_duckdb(bigquery_sql: str, table_map: Mapping[str, str] | None = None) -> str:
    """Transpile one BigQuery statement to DuckDB with the fixes above.

    Cached by text: relative date filters resolve to day- or hour-aligned literals, so a
    dashboard refreshing all day sends the same SQL and pays sqlglot once."""
    return _to_duckdb(bigquery_sql, tuple(sorted((table_map or {}).items())))


@functools.lru_cache(maxsize=1024)
def _to_duckdb(bigquery_sql: str, table_items: tuple[tuple[str, str], ...]) -> str:
    table_map = dict(table_items)
    try:
        tree = sqlglot.parse_one(bigquery_sql, read="bigquery")
    except sqlglot.errors.ParseError as exc:
        raise TranspileError(f"BigQuery SQL does not parse: {exc}") from None
    fixed = (
        tree.transform(lambda n: _fix(n, table_map), copy=True)
        .transform(_fix_scale)
        .transform(_fix_epoch_compare)
    )
    try:
        return fixed.sql("duckdb", pretty=True, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as exc:
        raise TranspileError(f"not expressible in DuckDB: {exc}") from None
