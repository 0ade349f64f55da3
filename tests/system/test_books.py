"""The books balance, end to end: shop -> API -> PostgreSQL -> replicator -> warehouse ->
dashboards, under a bounded load through the JWT-protected API."""

from __future__ import annotations

from conftest import Load, System, books_balance, freshness_s


def test_the_books_balance_after_a_bounded_load(system: System, soak: bool) -> None:
    load = Load(system.up, seed=1, seconds=60 if soak else 8).start()
    load.stop()
    assert load.statuses[200] + load.statuses[201] > 0, load.statuses
    assert not [s for s in load.statuses if s >= 500], (load.statuses, system.up.output)
    lag = freshness_s(system.dsn)
    assert lag < 1.0, f"the replicator confirmed the last change {lag:.2f}s after the load"
    books = books_balance(system.home, system.dsn)
    assert books["orders"] > 0
