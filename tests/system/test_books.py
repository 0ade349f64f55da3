"""The books balance, end to end: shop -> API -> PostgreSQL -> replicator -> warehouse ->
dashboards, under a bounded load through the JWT-protected API."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import duckdb

from conftest import System, books_balance, cli, freshness_s, token


def test_the_books_balance_after_a_bounded_load(system: System, soak: bool) -> None:
    seconds = 120 if soak else 8
    run = cli(
        system.home,
        "simulate",
        "--duration",
        str(seconds),
        "--seed",
        "1",
        "--rate",
        "40",
        "--concurrency",
        "4",
        "--api-url",
        system.up.api,
        "--token",
        token(system.up),
        timeout=seconds + 60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lag = freshness_s(system.dsn)
    assert lag < 1.0, f"the replicator confirmed the last change {lag:.2f}s after the load"
    books = books_balance(system.home, system.dsn)
    assert books["orders"] > 0


def test_a_product_with_a_long_description_is_bought_and_the_warehouse_shows_it_sold(
    system: System,
) -> None:
    """Issue 9's first case, through `up`: a 5,000-character description (TOASTed, sent as
    "unchanged" by the purchase's UPDATE) once stopped the replicator for good."""
    description = "".join(f"{i:05d} long description. " for i in range(250))[:5000]
    bearer = {"Authorization": f"Bearer {token(system.up)}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", system.up.ports["api"], timeout=15)
    try:
        body = {"name": "A very well described lamp", "price": "49.90", "description": description}
        conn.request("POST", "/products", body=json.dumps(body), headers=bearer)
        created = conn.getresponse()
        product = json.loads(created.read())
        assert created.status == 201, product
        conn.request(
            "POST",
            f"/products/{product['id']}/purchase",
            body="{}",
            headers={**bearer, "Idempotency-Key": f"long-{uuid.uuid4().hex}"},
        )
        bought = conn.getresponse()
        assert bought.status == 200, bought.read()
        bought.read()
    finally:
        conn.close()
    read_copy = system.home / "warehouse.read.duckdb"
    deadline = time.monotonic() + 60
    row = None
    while time.monotonic() < deadline:
        try:
            con = duckdb.connect(str(read_copy), read_only=True)
            try:
                row = con.execute(
                    "SELECT available, description FROM public_products WHERE id = ?",
                    [product["id"]],
                ).fetchone()
            finally:
                con.close()
        except duckdb.Error:
            row = None
        if row is not None and row[0] is False:
            break
        time.sleep(0.2)
    assert row is not None and row[0] is False, f"the warehouse never showed it sold: {row}"
    assert row[1] == description
    status = cli(system.home, "replicate", "status", dsn=system.dsn)
    assert "NOT RUNNING" not in status.stdout, status.stdout
