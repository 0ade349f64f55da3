"""The books balance, end to end: shop -> API -> PostgreSQL -> replicator -> warehouse ->
dashboards, under a bounded load through the JWT-protected API."""

from __future__ import annotations

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
