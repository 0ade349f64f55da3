"""``run_query(compiled, path)`` on a warehouse file that is replaced while the process lives.

The replicator replaces ``warehouse.read.duckdb`` about once a second. ``duckdb.connect(path)``
hands a long-lived process DuckDB's cached instance of the old file (instances are cached by
path), so ``run_query`` opens the file attached read-only instead and sees the new copy.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from hybridshop.analytics.lookml import Project, compile_query, run_query

from .conftest import fill_known


def _write(path: Path, extra_orders: int) -> None:
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect(str(tmp))
    fill_known(con)
    for i in range(extra_orders):
        con.execute(
            "INSERT INTO public_orders SELECT * REPLACE (id + 100 + ? AS id) FROM public_orders "
            "WHERE id = 1",
            [i],
        )
    con.close()
    os.replace(tmp, path)  # as the replicator replaces its read copy


def test_run_query_sees_a_replaced_file(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.read.duckdb"
    compiled = compile_query(project, "hybridshop", "public_orders", ["public_orders.count"])
    assert compiled.ok, compiled.errors
    _write(path, 0)
    assert run_query(compiled, path).rows == [{"public_orders.count": 5}]
    # a cached instance of the old file, as a long-lived process would hold one
    held = duckdb.connect(str(path), read_only=True)
    try:
        _write(path, 2)
        assert held.execute("SELECT count(*) FROM public_orders").fetchone() == (5,)  # stale
        assert run_query(compiled, path).rows == [{"public_orders.count": 7}]
        # the string form too, and the session is in UTC
        assert run_query(compiled, str(path)).rows == [{"public_orders.count": 7}]
    finally:
        held.close()


@pytest.mark.parametrize(
    ("timeframe", "text"),
    [
        ("minute", "2024-01-07 23:59"),
        ("hour", "2024-12-31 05"),
        ("date", "2024-02-29"),
        ("week", "2024-12-30"),
        ("month", "2024-10"),
        ("quarter", "2024-07"),
    ],
)
def test_fill_parses_each_timeframe_as_strptime_does(timeframe: str, text: str) -> None:
    from hybridshop.analytics.lookml.runner import _FORMATS, _parse

    assert _parse(text, timeframe) == datetime.strptime(text, _FORMATS[timeframe])


@pytest.mark.parametrize(
    ("timeframe", "text"), [("minute", "2024-01-07T23:59"), ("hour", "2024-01-07+05")]
)
def test_fill_rejects_text_that_is_not_the_timeframes_format(timeframe: str, text: str) -> None:
    from hybridshop.analytics.lookml.runner import _parse

    with pytest.raises(ValueError):
        _parse(text, timeframe)
