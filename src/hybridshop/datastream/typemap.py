"""PostgreSQL -> BigQuery type mapping as Datastream does it, expressed as DuckDB types.

Values travel as PostgreSQL's text output (pgoutput text mode, COPY CSV) and are cast inside
DuckDB with the SQL expression ``cast_sql`` returns, so backfill and streaming share one
conversion and DuckDB does it vectorised. Source sessions run with ``TimeZone=UTC``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# BigQuery type -> the DuckDB type we store it as.
_BQ_TO_DUCKDB = {
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "BOOL": "BOOLEAN",
    "STRING": "VARCHAR",
    "BYTES": "BLOB",
    "DATE": "DATE",
    "TIME": "TIME",
    "TIMESTAMP": "TIMESTAMP",  # UTC, like BigQuery's TIMESTAMP (an instant)
    "INTERVAL": "INTERVAL",
    "JSON": "JSON",
}

# Built-in type names (pg_type.typname) by the BigQuery type Datastream gives them.
_BY_NAME: dict[str, str] = {
    **dict.fromkeys(("int2", "int4", "int8", "oid"), "INT64"),
    **dict.fromkeys(("float4", "float8", "money"), "FLOAT64"),
    "bool": "BOOL",
    **dict.fromkeys(("bytea", "bit", "varbit"), "BYTES"),
    **dict.fromkeys(
        (
            "bpchar",
            "varchar",
            "text",
            "name",
            "uuid",
            "inet",
            "cidr",
            "macaddr",
            "macaddr8",
            "xml",
            "citext",
        ),
        "STRING",
    ),
    "date": "DATE",
    **dict.fromkeys(("time", "timetz"), "TIME"),
    **dict.fromkeys(("timestamp", "timestamptz"), "TIMESTAMP"),
    "interval": "INTERVAL",
    **dict.fromkeys(("json", "jsonb"), "JSON"),
}

# Types Datastream does not replicate (geometric, ranges): we keep their text rather than drop.
UNSUPPORTED = frozenset(
    (
        "point",
        "line",
        "lseg",
        "box",
        "path",
        "polygon",
        "circle",
        "int4range",
        "int8range",
        "numrange",
        "tsrange",
        "tstzrange",
        "daterange",
    )
)

NUMERIC_OID = 1700

# Types whose PostgreSQL text form can end in " BC" (dates before year 1).
BC_CAPABLE = frozenset(("date", "timestamp", "timestamptz"))


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What the catalog says about one type OID (``pg_type``)."""

    name: str
    category: str  # typcategory: 'A' array, 'E' enum, ...
    elem_name: str | None = None  # element type name for arrays
    typmod: int = -1  # a domain's own typmod (CREATE DOMAIN d AS numeric(10,2))


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A source column's destination type and how its text value is cast into it."""

    pg_name: str
    bigquery: str
    duckdb: str
    is_array: bool = False
    # How elements appear in JSON: number, bool, json, timestamp, timestamptz, string. The
    # backfill COPYs arrays as PostgreSQL's to_json(); the stream converts the array text
    # (``pg_array_to_json``) to exactly the same JSON.
    array_elem: str = "string"

    @property
    def needs_cast(self) -> bool:
        """False when the text is stored as is (VARCHAR): such a value can never be rejected."""
        return not (self.is_array or self.duckdb == "VARCHAR")

    def cast_sql(self, expr: str) -> str:
        """SQL turning the VARCHAR ``expr`` (PostgreSQL text output) into the DuckDB type.

        Fails (a DuckDB error) on a value the type cannot hold; ``try_cast_sql`` is the same
        conversion giving NULL instead, which the replicator uses to find and reject those
        values (see ``reject_reason``)."""
        if not self.needs_cast:
            return expr if not self.is_array else f"CAST({expr} AS JSON)"
        if self.pg_name in BC_CAPABLE:
            # BigQuery's DATE/TIMESTAMP start at year 1, and DuckDB's TIMESTAMP cast would even
            # read '0044-03-15 00:00:00 BC' as AD 44: refuse BC values loudly instead.
            return (
                f"CASE WHEN suffix({expr}, ' BC') THEN error('{self.pg_name} value ' || {expr} || "
                "' is before year 1, which BigQuery cannot store') "
                f"ELSE {self._plain_cast_sql(expr)} END"
            )
        return self._plain_cast_sql(expr)

    def try_cast_sql(self, expr: str) -> str:
        """``cast_sql`` that yields NULL for a value the destination type cannot hold."""
        if not self.needs_cast:
            return self.cast_sql(expr)
        plain = self._plain_cast_sql(expr, cast="TRY_CAST")
        if self.pg_name in BC_CAPABLE:
            return f"CASE WHEN suffix({expr}, ' BC') THEN NULL ELSE {plain} END"
        return plain

    def _plain_cast_sql(self, expr: str, cast: str = "CAST") -> str:
        if self.pg_name == "timestamptz":
            # Parse the offset (always +00 from our UTC sessions) before dropping the zone.
            return f"{cast}({cast}({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"
        if self.pg_name == "timetz":
            # BigQuery's TIME has no zone: normalise to UTC (10:00:00+02 -> 08:00:00), as a
            # TIMESTAMPTZ on a fixed day read in the UTC session; DuckDB's TIMETZ -> TIME cast
            # would drop the offset instead.
            return (
                f"{cast}({cast}({cast}('2000-01-01 ' || {expr} AS TIMESTAMPTZ) AS TIMESTAMP) "
                "AS TIME)"
            )
        if self.pg_name == "bytea":
            return f"from_hex(substr({expr}, 3))"
        if self.pg_name in ("bit", "varbit"):
            return f"CAST({expr} AS BLOB)"
        if self.pg_name == "money":
            return f"{cast}(regexp_replace({expr}, '[^0-9.eE+-]', '', 'g') AS DOUBLE)"
        if self.pg_name == "interval":
            return interval_sql(expr, cast)
        return f"{cast}({expr} AS {self.duckdb})"

    def reject_reason(self, value: str) -> str:
        """Why ``value`` (PostgreSQL text) cannot be written to this column."""
        if self.pg_name in BC_CAPABLE and value.endswith(" BC"):
            return f"{self.pg_name} before year 1: BigQuery and DuckDB cannot store it"
        if self.pg_name == "numeric" and value in ("NaN", "Infinity", "-Infinity"):
            return f"numeric {value} has no {self.bigquery} ({self.duckdb}) representation"
        if self.pg_name == "interval":
            if value.endswith("infinity"):
                return f"interval {value}: DuckDB's INTERVAL has no infinite value"
            return "interval out of the destination's range (months and days are 32-bit)"
        if self.pg_name in ("timestamp", "timestamptz", "date"):
            return (
                f"{self.pg_name} out of the destination's range (DuckDB TIMESTAMP ends in "
                "year 294247)"
            )
        return f"{self.pg_name} value does not fit the destination type {self.duckdb}"

    @property
    def copied_as_utc(self) -> bool:
        """The backfill COPY sends this column ``AT TIME ZONE 'UTC'`` (a zone-less timestamp):
        an explicit conversion that does not depend on the session's TimeZone, and DuckDB's
        plain TIMESTAMP cast of it is far cheaper than parsing a TIMESTAMPTZ."""
        return self.pg_name == "timestamptz" and not self.is_array

    def backfill_cast_sql(self, expr: str, *, try_cast: bool = False) -> str:
        """Like ``cast_sql`` for the text the backfill COPY produces (see ``copied_as_utc``)."""
        if self.copied_as_utc:
            # DuckDB's TIMESTAMP cast reads '0044-03-15 00:00:00 BC' as AD 44: BC values
            # take ``cast_sql``, which refuses them with a clear message.
            if try_cast:
                return f"CASE WHEN suffix({expr}, ' BC') THEN NULL ELSE TRY_CAST({expr} AS TIMESTAMP) END"
            return (
                f"CASE WHEN suffix({expr}, ' BC') THEN {self.cast_sql(expr)} "
                f"ELSE CAST({expr} AS TIMESTAMP) END"
            )
        return self.try_cast_sql(expr) if try_cast else self.cast_sql(expr)


# PostgreSQL's interval output with IntervalStyle=postgres (the source sessions' style):
# "[N year[s]] [N mon[s]] [N day[s]] [[+|-]H:MM:SS[.ffffff]]", each part signed on its own
# ('-1 days +02:00:00', '1 mon -3 days', '-00:00:01'); hours are not bounded to 24.
# DuckDB's own cast refuses a '+' before the time and would not mean the same on every mixed
# sign, so the parts are read with one regular expression and added as months, days and
# microseconds: the exact value, whichever components and signs it has.
_INTERVAL_RE = (
    r"^(?:([+-]?[0-9]+) years? ?)?(?:([+-]?[0-9]+) mons? ?)?(?:([+-]?[0-9]+) days? ?)?"
    r"(?:([+-]?)([0-9]+):([0-9]+):([0-9]+)(?:[.]([0-9]{1,6}))?)?$"
)
_INTERVAL_PARTS = "['y', 'mo', 'd', 'sg', 'h', 'mi', 's', 'f']"


def interval_sql(expr: str, cast: str = "CAST") -> str:
    """DuckDB SQL for a PostgreSQL interval's text (see ``_INTERVAL_RE``) as an INTERVAL of
    the same months, days and microseconds. Text of another shape ('infinity', another
    IntervalStyle) goes to DuckDB's own cast, which refuses what it cannot read (``cast``
    TRY_CAST: NULL, so the change is rejected); out-of-range parts likewise."""
    parts = f"regexp_extract({expr}, '{_INTERVAL_RE}', {_INTERVAL_PARTS})"

    def num(name: str) -> str:
        return f"CAST(coalesce(nullif({parts}.{name}, ''), '0') AS HUGEINT)"

    micros = (
        f"(CASE WHEN {parts}.sg = '-' THEN -1 ELSE 1 END) * ({num('h')} * 3600000000 + "
        f"{num('mi')} * 60000000 + {num('s')} * 1000000 + "
        f"CAST(rpad({parts}.f, 6, '0') AS HUGEINT))"
    )
    return (
        f"CASE WHEN {parts}.y = '' AND {parts}.mo = '' AND {parts}.d = '' AND {parts}.h = '' "
        f"THEN {cast}({expr} AS INTERVAL) ELSE "
        f"to_months({cast}({num('y')} * 12 + {num('mo')} AS INTEGER)) + "
        f"to_days({cast}({num('d')} AS INTEGER)) + "
        f"to_microseconds({cast}({micros} AS BIGINT)) END"
    )


def numeric_precision(typmod: int) -> tuple[int, int] | None:
    """(precision, scale) of NUMERIC(p,s), or None when unconstrained (typmod -1).

    The scale is an 11-bit signed field (PostgreSQL 15+ allows -1000..1000, e.g.
    ``numeric(5,-2)`` rounds to hundreds), the precision the upper 16 bits."""
    if typmod < 4:
        return None
    value = typmod - 4
    scale = ((value & 0x7FF) ^ 1024) - 1024
    return (value >> 16) & 0xFFFF, scale


def _decimal_for(precision: int, scale: int) -> tuple[int, int]:
    """The DuckDB DECIMAL(width, scale) that holds every NUMERIC(precision, scale) value
    exactly: a negative scale adds integer digits (numeric(5,-2) holds 9,999,900), a scale
    above the precision needs that many fractional digits (numeric(2,4) holds 0.0099)."""
    if scale < 0:
        return precision - scale, 0
    return max(precision, scale), scale


def column_type(info: TypeInfo, typmod: int) -> ColumnType:
    """Map one column as Datastream does; unknown or unsupported types fall back to STRING.
    A domain arrives here as its base type (``TypeCatalog``)."""
    if typmod == -1:
        typmod = info.typmod
    if info.category == "A":
        elem = info.elem_name or ""
        kind = "bool" if elem == "bool" else "string"
        if elem in ("int2", "int4", "int8", "oid", "float4", "float8", "numeric"):
            kind = "number"
        elif elem in ("json", "jsonb", "timestamp", "timestamptz"):
            kind = elem.replace("jsonb", "json")
        return ColumnType(info.name, "JSON", "JSON", is_array=True, array_elem=kind)
    if info.name == "numeric":
        ps = numeric_precision(typmod)
        if ps is None:
            return ColumnType("numeric", "STRING", "VARCHAR")  # exact text, any precision
        width, scale = _decimal_for(*ps)
        if width <= 38:
            return ColumnType("numeric", "NUMERIC", f"DECIMAL({width},{scale})")
        # BIGNUMERIC has no DuckDB equivalent: keep the exact digits as text.
        return ColumnType("numeric", "BIGNUMERIC", "VARCHAR")
    if info.category == "E":
        return ColumnType(info.name, "STRING", "VARCHAR")
    bq = _BY_NAME.get(info.name, "STRING")
    return ColumnType(info.name, bq, _BQ_TO_DUCKDB[bq])


def pg_array_to_json(text: str | None, elem: str = "string") -> str | None:
    """PostgreSQL array literal (``{1,2,"a b",NULL}``, nested allowed) -> JSON text.

    ``elem`` (number, bool, string) says how to write elements, so ``{1,2}`` of an int[]
    becomes ``[1,2]`` and a text[] stays strings. Numbers keep their exact digits.
    """
    if text is None:
        return None
    if text.startswith("["):  # explicit bounds prefix: [0:1]={...}
        text = text[text.index("=") + 1 :]
    pos = 0

    def parse() -> list[object]:
        nonlocal pos
        assert text[pos] == "{"
        pos += 1
        items: list[object] = []
        if text[pos] == "}":
            pos += 1
            return items
        while True:
            char = text[pos]
            if char == "{":
                items.append(parse())
            elif char == '"':
                pos += 1
                buf = []
                while text[pos] != '"':
                    if text[pos] == "\\":
                        pos += 1
                    buf.append(text[pos])
                    pos += 1
                pos += 1
                items.append(_element_text("".join(buf), elem))
            else:
                start = pos
                while text[pos] not in ",}":
                    pos += 1
                items.append(_scalar(text[start:pos], elem))
            if text[pos] == ",":
                pos += 1
                continue
            pos += 1  # '}'
            return items

    return _to_json(parse())


class _Number(str):
    """A number kept as its original digits (no float rounding)."""


def _to_json(value: object) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_to_json(v) for v in value) + "]"
    if isinstance(value, _Number):
        return str.__str__(value)
    return json.dumps(value)


def _scalar(raw: str, elem: str) -> object:
    if raw == "NULL":
        return None
    if elem == "bool":
        return raw == "t"
    if elem == "number" and raw not in ("NaN", "Infinity", "-Infinity"):
        return _Number(raw)
    if elem == "json":
        return _Number(raw)  # unquoted JSON (a number, true, null ...) kept as written
    return _element_text(raw, elem)


def _element_text(value: str, elem: str) -> object:
    """A quoted or bare array element as PostgreSQL's to_json() writes it: jsonb as JSON,
    timestamps in ISO 8601 ('T' separator, '+00:00' offsets; sessions run in UTC)."""
    if elem == "json":
        return _Number(value)
    if elem in ("timestamp", "timestamptz") and value[:1].isdigit() and " " in value:
        value = value.replace(" ", "T", 1)
        if elem == "timestamptz" and len(value) > 3 and value[-3] in "+-":
            value += ":00"
    return value
