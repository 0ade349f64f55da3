"""``hybridshop dashboards query|sql`` on the known warehouse."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hybridshop.cli.main import app


def test_query_json(known_db: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "dashboards",
            "query",
            "sales",
            "revenue_by_category",
            "--json",
            "--warehouse",
            known_db,
            "--filter",
            "date=2024-01-01 to 2024-02-01",
            "--filter",
            "category=-books",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"public_products.category": "music", "public_orders.revenue": 330.0},
        {"public_products.category": "home", "public_orders.revenue": 70.0},
    ]


def test_query_table(known_db: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "dashboards",
            "query",
            "catalog",
            "unsold_listings",
            "--warehouse",
            known_db,
            "-f",
            "date=2024",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Pen" in result.output and "2024-01-05" in result.output


def test_sql_prints_bigquery_and_duckdb() -> None:
    result = CliRunner().invoke(app, ["dashboards", "sql", "sales", "top_products"])
    assert result.exit_code == 0, result.output
    bigquery, duck = result.output.split("-- DuckDB (what runs locally)")
    assert "`my-gcp-project.hybridshop.public_orders` AS public_orders" in bigquery
    assert "LIMIT 10" in bigquery
    assert "FROM public_orders AS public_orders" in duck


def test_sql_retargeted_to_a_bigquery_dataset() -> None:
    result = CliRunner().invoke(
        app, ["dashboards", "sql", "sales", "revenue", "--bigquery", "prod-1.analytics"]
    )
    assert result.exit_code == 0, result.output
    assert "`prod-1.analytics.public_orders`" in result.output
    assert "my-gcp-project" not in result.output


def test_errors_are_one_clear_line(known_db: str, tmp_path: object) -> None:
    runner = CliRunner()
    cases = [
        (["dashboards", "query", "nope", "x", "--warehouse", known_db], "no dashboard 'nope'"),
        (
            ["dashboards", "query", "sales", "nope", "--warehouse", known_db],
            "has no element 'nope'",
        ),
        (
            ["dashboards", "query", "sales", "revenue", "-f", "date", "--warehouse", known_db],
            "expected name=expression",
        ),
        (
            [
                "dashboards",
                "query",
                "sales",
                "revenue",
                "-f",
                "colour=red",
                "--warehouse",
                known_db,
            ],
            "has no filter 'colour'",
        ),
        (
            [
                "dashboards",
                "query",
                "sales",
                "revenue",
                "-f",
                "date=7 dayz",
                "--warehouse",
                known_db,
            ],
            "is not a date filter",
        ),
        (
            ["dashboards", "query", "sales", "revenue", "--warehouse", "/nonexistent.duckdb"],
            "no warehouse at /nonexistent.duckdb",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_dashboards_alone_serves_them(tmp_path: Path) -> None:
    """`hybridshop dashboards` with no command serves (it used to print the help)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HYBRIDSHOP_HOME": str(tmp_path), "HYBRIDSHOP_DASHBOARD_PORT": str(port)}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("hybridshop")), "dashboards"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the dashboards never listened"
                time.sleep(0.2)
        assert resp.status_code == 200
        assert "/dashboards/sales" in resp.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
