"""Looker filter expressions, checked by the rows they select on DuckDB (not by SQL text).

Cases follow Looker's own grammar tests (looker-open-source/components, filter-expressions)
and the filter-expression documentation.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from hybridshop.analytics.lookml import filters as fx
from hybridshop.analytics.lookml.errors import FilterExpressionError
from hybridshop.analytics.lookml.transpile import to_duckdb

STRINGS = {1: "FOO", 2: "BAR", 3: "foo", 4: "FOOD", 5: "SNAFU", 6: "", 7: None, 8: "A,B", 9: "50%"}
NUMBERS = {1: 0, 2: 1, 3: 3, 4: 5, 5: 5.5, 6: 9, 7: 10, 8: 20, 9: 29, 10: 80, 11: 100, 12: None}
# now = Wednesday 2024-01-10 15:30 UTC
NOW = datetime(2024, 1, 10, 15, 30, tzinfo=UTC)
TIMES = {
    1: datetime(2024, 1, 10, 9),  # today
    2: datetime(2024, 1, 9, 23, 59),  # yesterday
    3: datetime(2024, 1, 8, 0, 0),  # 2 days ago (Monday, this week)
    4: datetime(2024, 1, 7, 12),  # 3 days ago (Sunday, last week)
    5: datetime(2024, 1, 1),  # this month, last week
    6: datetime(2023, 12, 31, 23, 59, 59),  # last month, last year
    7: datetime(2023, 10, 5),  # 2023-10-05
    8: datetime(2024, 1, 11, 1),  # tomorrow
    9: None,
}


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    c.execute("CREATE TABLE s (id INT, v VARCHAR)")
    c.executemany("INSERT INTO s VALUES (?, ?)", list(STRINGS.items()))
    c.execute("CREATE TABLE n (id INT, v DOUBLE)")
    c.executemany("INSERT INTO n VALUES (?, ?)", list(NUMBERS.items()))
    c.execute("CREATE TABLE t (id INT, v TIMESTAMP)")
    c.executemany("INSERT INTO t VALUES (?, ?)", list(TIMES.items()))
    return c


def _ids(con: duckdb.DuckDBPyConnection, table: str, cond: str | None) -> set[int]:
    sql = f"SELECT id FROM `p.d.{table}` AS x" + (f" WHERE {cond}" if cond else "")
    return {r[0] for r in con.execute(to_duckdb(sql)).fetchall()}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("FOO", {1}),
        ("FOO,BAR", {1, 2}),
        ("FOO, BAR", {1, 2}),
        ("%FOO%", {1, 4}),
        ("FOO%", {1, 4}),
        ("%FU", {5}),
        ("_OO", {1}),
        ("EMPTY", {6, 7}),
        ("NULL", {7}),
        ("-NULL", {1, 2, 3, 4, 5, 6, 8, 9}),
        ("-FOO", {2, 3, 4, 5, 6, 7, 8, 9}),  # negation keeps NULLs, as Looker does
        ("-%FOO%", {2, 3, 5, 6, 7, 8, 9}),
        ("-EMPTY", {1, 2, 3, 4, 5, 8, 9}),
        ("FOO%,-FOOD", {1}),  # positives ORed, negatives ANDed
        ("A^,B", {8}),  # ^ escapes the comma
        ("50^%", {9}),  # ^ escapes the wildcard
        ("%^%", {9}),
        ("", {1, 2, 3, 4, 5, 6, 7, 8, 9}),  # is any value
    ],
)
def test_string_filters(con: duckdb.DuckDBPyConnection, expr: str, expected: set[int]) -> None:
    assert _ids(con, "s", fx.string_condition("x.v", expr)) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("5", {4}),
        ("not 5", {1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12}),
        ("1, 3, 5", {2, 3, 4}),
        ("not 1, 3, 5", {1, 5, 6, 7, 8, 9, 10, 11, 12}),
        ("5.5 to 10", {5, 6, 7}),
        ("20 to", {8, 9, 10, 11}),
        ("to 1", {1, 2}),
        (">= 5.5 AND <= 10", {5, 6, 7}),
        ("<3 OR >80", {1, 2, 11}),
        ("NULL", {12}),
        ("NOT NULL", set(range(1, 12))),
        ("(1,100]", {3, 4, 5, 6, 7, 8, 9, 10, 11}),
        ("[0,9],[20,29]", {1, 2, 3, 4, 5, 6, 8, 9}),
        ("(1, inf)", {3, 4, 5, 6, 7, 8, 9, 10, 11}),
        ("[-inf, 1)", {1}),
        ("!= 5", {1, 2, 3, 5, 6, 7, 8, 9, 10, 11}),
        ("", set(range(1, 13))),
    ],
)
def test_number_filters(con: duckdb.DuckDBPyConnection, expr: str, expected: set[int]) -> None:
    assert _ids(con, "n", fx.number_condition("x.v", expr)) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("today", {1}),
        ("yesterday", {2}),
        ("tomorrow", {8}),
        ("3 days", {1, 2, 3}),  # today and the two whole days before
        ("3 days ago", {4}),
        ("before 3 days ago", {5, 6, 7}),  # before the start of the day 3 days ago (01-07)
        ("2 days ago for 2 days", {2, 3}),
        ("after 2024-01-08", {1, 2, 3, 8}),  # inclusive
        ("before 2024-01-08", {4, 5, 6, 7}),  # exclusive
        ("2024-01-07 to 2024-01-09", {3, 4}),  # end excluded
        ("2023", {6, 7}),
        ("2023/10", {7}),
        ("2023-10-05", {7}),
        ("this week", {1, 2, 3, 8}),  # Monday weeks
        ("last week", {4, 5}),
        ("this month", {1, 2, 3, 4, 5, 8}),
        ("last month", {6}),
        ("last year", {6, 7}),
        ("this quarter", {1, 2, 3, 4, 5, 8}),
        ("1 month ago for 2 months", {1, 2, 3, 4, 5, 6, 8}),
        ("2 complete days", {2, 3}),
        ("1 day from now", {8}),
        ("today, 2023", {1, 6, 7}),  # terms ORed
        ("null", {9}),
        ("not null", set(range(1, 9))),
        ("2 hours", set()),  # 14:00-16:00 today: nothing in the data
        ("7 hours", {1}),
        ("2024-01-09 23:00 to 2024-01-10 10:00", {1, 2}),
        ("", set(range(1, 10))),
    ],
)
def test_date_filters(con: duckdb.DuckDBPyConnection, expr: str, expected: set[int]) -> None:
    assert _ids(con, "t", fx.date_condition("x.v", expr, NOW)) == expected


@pytest.mark.parametrize(
    ("kind", "expr"),
    [
        ("number", "five"),
        ("number", "5 to 6 to 7"),
        ("number", "1,,2"),
        ("date", "7"),
        ("date", "before"),
        ("date", "from now"),
        ("date", "yyesterday"),
        ("date", "2024-13-01"),
        ("date", "3 fortnights"),
        ("yesno", "maybe"),
        ("string", "-"),
    ],
)
def test_bad_expressions_raise(kind: str, expr: str) -> None:
    fn = {
        "number": fx.number_condition,
        "date": lambda c, e: fx.date_condition(c, e, NOW),
        "yesno": fx.yesno_condition,
        "string": fx.string_condition,
    }[kind]
    with pytest.raises(FilterExpressionError):
        fn("x.v", expr)


def test_string_values_are_quoted_not_injected(con: duckdb.DuckDBPyConnection) -> None:
    cond = fx.string_condition("x.v", "x' OR '1'='1")
    assert _ids(con, "s", cond) == set()
