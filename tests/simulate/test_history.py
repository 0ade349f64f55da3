"""``--backfill-days``: history through core with past timestamps — its patterns, its rules,
its determinism, and the refusals (same seed twice, a database that may be production)."""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, timedelta

import psycopg2
import pytest
from typer.testing import CliRunner

from conftest import create_database
from hybridshop.cli.main import app
from hybridshop.db.embedded import EmbeddedPostgres
from hybridshop.simulate import model
from hybridshop.simulate.backfill import (
    BackfillConfig,
    BackfillRefused,
    backfill,
    is_local_database,
)

from .conftest import query
from .stats import chi_square_p

UNTIL = date(2026, 11, 30)
SEED = 11


def run(dsn: str, config: BackfillConfig, *, pipeline: bool = True):  # type: ignore[no-untyped-def]
    """As the CLI runs it: listings and purchases on two connections (``pipeline``), or all
    on one."""
    conn = psycopg2.connect(dsn)
    try:
        return backfill(conn, config, connect=(lambda: psycopg2.connect(dsn)) if pipeline else None)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def history(pg: EmbeddedPostgres) -> tuple[str, BackfillConfig, object]:
    """90 days of history with a fixed seed, written once for the tests of this module."""
    dsn = create_database(pg)
    config = BackfillConfig(days=90, seed=SEED, orders_per_day=120, until=UNTIL)
    return dsn, config, run(dsn, config)


def test_counts_and_rules(history: tuple[str, BackfillConfig, object]) -> None:
    dsn, config, result = history
    ((orders, revenue, products),) = query(
        dsn,
        "SELECT (SELECT count(*) FROM orders), (SELECT sum(price) FROM orders), "
        "(SELECT count(*) FROM products)",
    )
    assert (orders, revenue, products) == (result.orders, result.revenue, result.products)  # type: ignore[attr-defined]
    assert result.days == 90 and result.orders > 90 * 100  # type: ignore[attr-defined]
    # double clicks were replayed and stale purchases refused, by the core rules
    assert result.replays > 0 and result.already_sold > 0  # type: ignore[attr-defined]
    # every sold product is unavailable, sold once, listed before it was bought, and its
    # updated_at is the time of the sale; all inside the history's days
    (bad,) = query(
        dsn,
        "SELECT count(*) FROM orders o JOIN products p ON p.id = o.product_id "
        "WHERE p.available OR p.created_at > o.purchased_at OR p.updated_at <> o.purchased_at "
        "OR o.purchased_at < %s OR o.purchased_at >= %s",
        (f"{config.first_date()}T00:00Z", f"{UNTIL}T00:00Z"),
    )[0]
    assert bad == 0
    ((unsold,),) = query(dsn, "SELECT count(*) FROM products WHERE available")
    assert unsold > 0  # some stock stays on the shelves
    ((keys,),) = query(dsn, "SELECT count(DISTINCT idempotency_key) FROM orders")
    assert keys == orders


def test_hour_of_day_follows_the_profile(history: tuple[str, BackfillConfig, object]) -> None:
    dsn, _config, _ = history
    rows = query(
        dsn,
        "SELECT (purchased_at AT TIME ZONE 'UTC')::date, "
        "extract(hour FROM purchased_at AT TIME ZONE 'UTC')::int, count(*) "
        "FROM orders GROUP BY 1, 2",
    )
    per_day: Counter[date] = Counter()
    observed = [0.0] * 24
    for day, hour, n in rows:
        per_day[day] += n
        observed[hour] += n
    expected = [0.0] * 24
    for day, n in per_day.items():
        profile = model.hour_profile(day.weekday())
        for hour in range(24):
            expected[hour] += n * profile[hour] / sum(profile)
    assert chi_square_p(observed, expected) > 0.001
    # and the check can fail: the same counts are nothing like a flat day
    flat = [sum(observed) / 24] * 24
    assert chi_square_p(observed, flat) < 1e-9
    # quiet nights, evening peak
    assert observed[20] > 5 * observed[4]


def test_weekends_are_busier(history: tuple[str, BackfillConfig, object]) -> None:
    dsn, _config, _ = history
    rows = query(
        dsn, "SELECT (purchased_at AT TIME ZONE 'UTC')::date, count(*) FROM orders GROUP BY 1"
    )
    weekend = [n for d, n in rows if d.weekday() >= 5]
    weekdays = [n for d, n in rows if d.weekday() < 4]
    assert statistics.mean(weekend) > 1.15 * statistics.mean(weekdays)


def test_categories_follow_drifting_popularity(
    history: tuple[str, BackfillConfig, object],
) -> None:
    dsn, config, _ = history
    rows = query(
        dsn,
        "SELECT (o.purchased_at AT TIME ZONE 'UTC')::date, p.category, count(*) "
        "FROM orders o JOIN products p ON p.id = o.product_id GROUP BY 1, 2",
    )
    per_day: Counter[date] = Counter()
    observed: Counter[str] = Counter()
    by_month: dict[int, Counter[str]] = defaultdict(Counter)
    for day, category, n in rows:
        per_day[day] += n
        observed[category] += n
        by_month[day.month][category] += n
    drift = model.Drift.from_seed(config.seed)
    expected: Counter[str] = Counter()
    for day, n in per_day.items():
        for category, share in drift.shares((day - date(1970, 1, 1)).days, day.month).items():
            expected[category] += n * share
    names = list(model.CATEGORY_NAMES)
    assert chi_square_p([observed[c] for c in names], [expected[c] for c in names]) > 0.001
    # categories differ in popularity, and the popularity is not the undrifted base shares
    assert observed["electronics"] > 2 * observed["grocery"]
    total = sum(observed.values())
    base = [c.popularity * total for c in model.CATEGORIES]
    assert chi_square_p([observed[c] for c in names], base) < 1e-6

    # and it drifts: from the first month to the last, some category's share moves by a
    # fifth or more of itself
    def share(month: int, category: str) -> float:
        return by_month[month][category] / sum(by_month[month].values())

    moves = [abs(share(11, c) / share(9, c) - 1) for c in names]
    assert max(moves) > 0.2


def test_prices_differ_by_category(history: tuple[str, BackfillConfig, object]) -> None:
    dsn, _config, _ = history
    prices: dict[str, list[float]] = defaultdict(list)
    for category, price in query(dsn, "SELECT category, price FROM products"):
        prices[category].append(float(price))
    median = {c: statistics.median(p) for c, p in prices.items()}
    assert median["electronics"] > 4 * median["grocery"]
    assert median["books"] < median["clothing"]
    for category, values in prices.items():
        expensive = [p for p in values if p > 4 * median[category]]
        assert 0 < len(expensive) < 0.1 * len(values), category  # a few expensive items


def test_same_seed_same_history_and_second_run_refused(pg: EmbeddedPostgres) -> None:
    config = BackfillConfig(days=14, seed=5, orders_per_day=80, until=UNTIL)
    first, second, other = create_database(pg), create_database(pg), create_database(pg)
    run(first, config)
    run(second, config)
    run(other, BackfillConfig(days=14, seed=6, orders_per_day=80, until=UNTIL))
    sql = (
        "SELECT p.name, p.description, p.category, p.price, p.created_at, o.purchased_at, "
        "o.buyer_ref, o.channel, o.idempotency_key FROM products p "
        "LEFT JOIN orders o ON o.product_id = p.id ORDER BY p.id"
    )
    assert query(first, sql) == query(second, sql)
    assert query(first, sql) != query(other, sql)
    with pytest.raises(BackfillRefused, match="already holds the history of --seed 5"):
        run(first, config)


def test_batches_of_days_write_what_day_by_day_writing_writes(pg: EmbeddedPostgres) -> None:
    """Days written together (one add_products and one purchase_many for many days, listings
    and purchases on two connections at once) answer every purchase as one day at a time on
    one connection does: the same rows, ids included."""
    day_by_day, batched = create_database(pg), create_database(pg)
    config = BackfillConfig(days=10, seed=7, orders_per_day=80, until=UNTIL)
    one = run(day_by_day, dataclasses.replace(config, batch_rows=1), pipeline=False)
    many = run(batched, dataclasses.replace(config, batch_rows=3_000))  # two backends at once
    timing = {"seconds": 0, "rows_per_s": 0}
    assert one.to_dict() | timing == many.to_dict() | timing
    assert one.replays > 0 and one.already_sold > 0
    for sql in (
        "SELECT * FROM products ORDER BY id",
        "SELECT * FROM orders ORDER BY id",
    ):
        assert query(day_by_day, sql) == query(batched, sql)
    # orders are numbered in the order they were bought
    ((unordered,),) = query(
        batched,
        "SELECT count(*) FROM (SELECT purchased_at < lag(purchased_at) OVER (ORDER BY id) AS back "
        "FROM orders) t WHERE back",
    )
    assert unordered == 0


def test_stop_keeps_what_was_committed(pg: EmbeddedPostgres) -> None:
    """Ctrl-C (``should_stop``) mid-history: whole batches are committed, the days counted
    are the days in the database, the rest is not written."""
    dsn = create_database(pg)
    config = BackfillConfig(days=60, seed=9, orders_per_day=80, until=UNTIL, batch_rows=500)
    seen: list[int] = []
    conn = psycopg2.connect(dsn)
    try:
        result = backfill(
            conn,
            config,
            on_day=lambda i, _r: seen.append(i),
            should_stop=lambda: len(seen) >= 5,
            connect=lambda: psycopg2.connect(dsn),
        )
    finally:
        conn.close()
    assert 5 <= result.days < 60
    ((orders, last),) = query(dsn, "SELECT count(*), max(purchased_at) FROM orders")
    assert orders == result.orders
    # the orders and listings are those of the first result.days days, none later
    end = config.first_date() + timedelta(days=result.days)
    assert last is not None and last.astimezone(UTC).date() < end
    ((newest,),) = query(dsn, "SELECT max(created_at) FROM products")
    assert newest.astimezone(UTC).date() < end


def test_local_database_detection() -> None:
    assert is_local_database("postgresql://postgres@127.0.0.1:55432/hybridshop")
    assert is_local_database("host=/tmp dbname=x")
    assert is_local_database("postgresql://u@localhost/x")
    assert not is_local_database("postgresql://u:p@shop.abc.eu-west-1.rds.amazonaws.com/x")
    assert not is_local_database("host=127.0.0.1,db.example.com dbname=x")


def test_cli_refuses_a_remote_database_without_confirmation() -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--backfill-days", "30"],
        env={"DATABASE_URL": "postgresql://u:secret@db.example.com:5432/shop"},
    )
    assert result.exit_code == 2
    assert "refusing to write history" in result.output and "--yes-i-mean-it" in result.output
    assert "secret" not in result.output
    assert "Traceback" not in result.output


def test_cli_backfill_writes_and_reports(pg: EmbeddedPostgres, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dsn = create_database(pg)
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(
        app,
        ["simulate", "--backfill-days", "3", "--seed", "2", "--until", "2026-06-01",
         "--orders-per-day", "50", "--summary-json", str(out), "--quiet"],
        env={"DATABASE_URL": dsn},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads(out.read_text())
    # the demo catalog is seeded first, as `hybridshop up` does, then the history
    ((orders,),) = query(dsn, "SELECT count(*) FROM orders")
    assert summary["orders"] == orders > 0 and summary["days"] == 3
    assert "history written" in result.output
