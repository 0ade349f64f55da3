"""Months of shop history written through the core functions, with explicit past timestamps.

Why not through the API: the API stamps every listing and purchase with the time it happens
and must never let a client choose it (a shopper who could backdate orders could rewrite the
books), so history cannot be sent through API Gateway. Instead this writes to the database the
replicator reads, with the same code the Lambda handlers run:

- every listing is the JSON a seller would send, validated by ``core.validation`` as
  ``POST /products`` validates it, then written by ``core.catalog.add_products``;
- every purchase is validated by ``parse_purchase`` as ``POST /products/{id}/purchase`` is and
  written by ``core.catalog.purchase_many``: the same guarded UPDATE feeding the INSERT, so an
  item sells once (the database's ``orders_product_sold_once`` still guards it), idempotency
  keys replay instead of buying twice, a purchase of a sold item fails as ``already_sold``;
- consecutive days written together, one transaction of about ``batch_rows`` rows each (two
  statements: the listings, then the purchases), so the replicator sees history as ordinary
  commits and it reaches the warehouse exactly as live traffic does.

The history is a pure function of the seed, the number of days, the end date and the rate:
two runs with the same arguments on equal databases write the same rows.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import psycopg2.extensions

from hybridshop.core.catalog import PurchaseOutcome, add_products, purchase_many
from hybridshop.core.errors import AlreadySold, IdempotencyConflict
from hybridshop.core.models import NewProduct, PurchaseRequest
from hybridshop.core.validation import parse_new_product, parse_purchase
from hybridshop.simulate import model

LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
CHANNELS = (("web", 0.68), ("mobile", 0.27), ("api", 0.05))
SHOPPERS = 20_000
DOUBLE_CLICK_SHARE = 0.01  # purchases sent twice with the same Idempotency-Key
STALE_SHARE = 0.005  # purchases of an item someone else bought minutes before


class BackfillRefused(RuntimeError):
    """The backfill would write to a database it must not touch without confirmation."""


def is_local_database(dsn: str) -> bool:
    """True for a PostgreSQL on this machine (loopback or a Unix socket): the embedded server
    or a developer's own. Anything else may be production."""
    params = psycopg2.extensions.parse_dsn(dsn)
    hosts = [h.strip() for h in (params.get("host") or "").split(",")]
    return all(h in LOCAL_HOSTS or h.startswith("/") for h in hosts)


def history_key_prefix(seed: int) -> str:
    return f"history-{seed}-"


@dataclass(frozen=True)
class BackfillConfig:
    days: int
    seed: int = 1
    orders_per_day: float = 250.0  # on an average day at the start of the history
    growth: float = 0.5  # the shop grows by this share from the first day to the last
    stock_ratio: float = 1.3  # listings per order: some stock stays unsold
    until: date | None = None  # history ends at the local midnight that starts this day
    timezone: str = "UTC"
    # consecutive days are written together, about this many rows (listings + purchases) in
    # one transaction: two statements per batch instead of per day
    batch_rows: int = 20_000

    def end_date(self) -> date:
        return self.until or datetime.now(ZoneInfo(self.timezone)).date()

    def first_date(self) -> date:
        return self.end_date() - timedelta(days=self.days)


@dataclass
class BackfillResult:
    days: int = 0
    products: int = 0
    orders: int = 0
    replays: int = 0
    already_sold: int = 0
    conflicts: int = 0
    revenue: Decimal = Decimal("0.00")
    seconds: float = 0.0
    orders_by_category: dict[str, int] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None

    @property
    def rows(self) -> int:
        """Rows written: products plus orders (a sale also updates its product)."""
        return self.products + self.orders

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "products": self.products,
            "orders": self.orders,
            "replays": self.replays,
            "already_sold": self.already_sold,
            "conflicts": self.conflicts,
            "revenue": str(self.revenue),
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "orders_by_category": dict(sorted(self.orders_by_category.items())),
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
        }


@dataclass
class _Listing:
    fields: dict[str, Any]
    at: datetime
    category: str
    index: int = -1  # position among all listings of the history (ids follow it)


@dataclass
class _Day:
    """One day as the writer gets it: validated listings, in insertion order, and purchases
    naming their product by its listing's index."""

    products: list[tuple[NewProduct, datetime]]
    purchases: list[tuple[int, PurchaseRequest, datetime, str]]  # listing, request, time, category


def _moments(
    rng: random.Random, day: date, count: int, tz: ZoneInfo, flatten: float = 1.0
) -> list[datetime]:
    """``count`` sorted moments of a local day, hours drawn from the day's profile."""
    hours = [w**flatten for w in model.hour_profile(day.weekday())]
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    picked = rng.choices(range(24), weights=hours, k=count)
    seconds = sorted(h * 3600 + rng.random() * 3600 for h in picked)
    return [(start + timedelta(seconds=s)).astimezone(UTC) for s in seconds]


def _channel(rng: random.Random) -> str:
    x = rng.random()
    for name, share in CHANNELS:
        if x < share:
            return name
        x -= share
    return CHANNELS[0][0]


def _shopper(rng: random.Random) -> str:
    # a few loyal customers buy often, most buy once in a while (Pareto-like)
    n = min(int(rng.paretovariate(1.2)) - 1, SHOPPERS - 1)
    if n == 0:
        n = rng.randrange(SHOPPERS)
    return f"shopper-{n:05d}"


class HistoryPlanner:
    """Plans the listings and purchases of each day; holds the unsold stock between days."""

    def __init__(self, config: BackfillConfig) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.drift = model.Drift.from_seed(config.seed)
        self.supply = model.supply_shares()
        # unsold stock per category (listings already written)
        self.stock: dict[str, list[_Listing]] = {name: [] for name in model.CATEGORY_NAMES}
        self.serial = 0
        self.purchase_no = 0
        self.listed = 0  # listings handed to the writer so far

    def orders_on(self, rng: random.Random, index: int, day: date) -> int:
        progress = index / max(1, self.config.days - 1)
        mean = (
            self.config.orders_per_day
            * model.day_factor(day.weekday())
            * (1 + self.config.growth * progress)
        )
        return max(0, round(mean * rng.lognormvariate(0, 0.08)))

    def _new_listing(self, rng: random.Random, category: str, at: datetime) -> _Listing:
        self.serial += 1
        fields = model.product_fields(rng, model.BY_NAME[category], self.serial)
        return _Listing(fields, at, category)

    def plan(self, index: int, day: date) -> _Day:
        rng = random.Random(f"history:{self.config.seed}:{day.isoformat()}")
        orders = self.orders_on(rng, index, day)
        listing_times = _moments(rng, day, round(orders * self.config.stock_ratio), self.tz, 0.5)
        listings = [
            self._new_listing(rng, model.weighted_choice(rng, self.supply), at)
            for at in listing_times
        ]
        shares = self.drift.shares((day - date(1970, 1, 1)).days, day.month)
        day_start = datetime(day.year, day.month, day.day, tzinfo=self.tz).astimezone(UTC)
        restocks: list[_Listing] = []
        purchases: list[tuple[_Listing, PurchaseRequest, datetime]] = []
        sold_today: list[_Listing] = []
        pending = 0  # listings of today already on sale
        for at in _moments(rng, day, orders, self.tz):
            while pending < len(listings) and listings[pending].at < at:
                self.stock[listings[pending].category].append(listings[pending])
                pending += 1
            category = model.weighted_choice(rng, shares)
            pool = self.stock[category]
            if not pool:
                # sold out: a seller restocks a little before the buyer arrives
                restock_at = max(day_start, at - timedelta(minutes=rng.uniform(5, 120)))
                listing = self._new_listing(rng, category, restock_at)
                restocks.append(listing)
                pool.append(listing)
            pick = rng.randrange(len(pool))
            pool[pick], pool[-1] = pool[-1], pool[pick]
            item = pool.pop()
            self.purchase_no += 1
            key = f"{history_key_prefix(self.config.seed)}{self.purchase_no}"
            request = parse_purchase({"buyer_ref": _shopper(rng), "channel": _channel(rng)}, key)
            purchases.append((item, request, at))
            sold_today.append(item)
            extra = rng.random()
            if extra < DOUBLE_CLICK_SHARE:
                purchases.append((item, request, at + timedelta(milliseconds=300)))
            elif extra < DOUBLE_CLICK_SHARE + STALE_SHARE and len(sold_today) > 1:
                # someone on a stale page buys an item that sold earlier today
                stale = sold_today[rng.randrange(len(sold_today) - 1)]
                late = parse_purchase({"buyer_ref": _shopper(rng), "channel": "web"})
                purchases.append((stale, late, at))
        for listing in listings[pending:]:
            self.stock[listing.category].append(listing)
        listings += restocks
        for item in listings:
            item.index = self.listed
            self.listed += 1
        return _Day(
            [(parse_new_product(item.fields), item.at) for item in listings],
            [(item.index, request, at, item.category) for item, request, at in purchases],
        )


def backfill(
    conn: Any,
    config: BackfillConfig,
    on_day: Callable[[int, BackfillResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    connect: Callable[[], Any] | None = None,
) -> BackfillResult:
    """Write ``config.days`` days of history on ``conn``, in batches of consecutive days
    (``config.batch_rows``); ``on_day`` is called for each day written. With ``connect`` (a
    second connection to the same database) listings and purchases are written by two
    backends at once, each batch as two transactions (its listings, then its purchases);
    without, one transaction per batch."""
    if config.days < 1:
        raise ValueError("--backfill-days must be at least 1")
    conn.autocommit = False
    prefix = history_key_prefix(config.seed)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM orders WHERE idempotency_key LIKE %s LIMIT 1",
            (prefix.replace("_", "\\_") + "%",),
        )
        if cur.fetchone() is not None:
            conn.rollback()
            raise BackfillRefused(
                f"this database already holds the history of --seed {config.seed} (orders with "
                f"Idempotency-Key {prefix}*); use another --seed or a fresh database"
            )
    conn.rollback()
    result = BackfillResult()
    started = time.perf_counter()
    # This thread plans and validates the next days (Python) while a writer thread waits for
    # PostgreSQL to write the previous batch (psycopg2 lets go of the GIL while it waits), so
    # the two cores work at once. One process: nothing is pickled between planner and writer
    # (a process pair spent more CPU moving the plans than planning them).
    second = connect() if connect is not None else None
    if second is not None:
        second.autocommit = False
    writer = _Writer(conn, result, second)
    # The bulk allocates millions of short-lived objects and makes no reference cycles worth
    # collecting: the cyclic collector only costs CPU here (~10%, measured). Back on after.
    collecting = gc.isenabled()
    gc.disable()
    writer.start()
    planner = HistoryPlanner(config)
    first = config.first_date()
    batch: list[_Day] = []
    rows = 0
    try:
        for index in range(config.days):
            if should_stop is not None and should_stop():
                break  # Ctrl-C: the batch being written is committed, the queued ones dropped
            day = planner.plan(index, first + timedelta(days=index))
            batch.append(day)
            rows += len(day.products) + len(day.purchases)
            if rows >= config.batch_rows or index == config.days - 1:
                writer.put(batch, on_day, should_stop)
                batch, rows = [], 0
            writer.report(on_day)
        else:
            writer.finish(on_day)
    finally:
        writer.close()
        if collecting:
            gc.enable()
        if second is not None:
            second.close()
    result.seconds = time.perf_counter() - started
    return result


class _Writer:
    """Writer threads: batches of days in, in order. With one connection, one thread writes
    each batch in one transaction (listings, then purchases). With a second connection
    (``purchases_conn``) it is a two-stage pipeline on two PostgreSQL backends: one thread
    commits the listings of batch k+1 while the other commits the purchases of batch k (a
    purchase only names listings committed before it). Product ids are drawn by the first
    connection alone and order ids by the second alone, in order, so the rows are the same
    either way. Days written are counted into ``result`` by the caller's thread
    (``report``), which also calls ``on_day``; an error of a writer is raised there."""

    def __init__(self, conn: Any, result: BackfillResult, purchases_conn: Any = None) -> None:
        self.result = result
        self.batches: queue.Queue[list[_Day] | None] = queue.Queue(maxsize=2)
        self.listed: queue.Queue[list[_Day] | None] = queue.Queue(maxsize=2)
        self.written: queue.Queue[int] = queue.Queue()
        self.failed = threading.Event()
        self.error: BaseException | None = None
        self.ids: list[int] = []  # product id of each listing, by listing index
        if purchases_conn is None:
            targets = [(self._write_whole, conn)]
        else:
            targets = [(self._list, conn), (self._buy, purchases_conn)]
        self.threads = [
            threading.Thread(target=self._guard, args=t, name=f"history-writer-{n}", daemon=True)
            for n, t in enumerate(targets)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _guard(self, stage: Callable[[Any], None], conn: Any) -> None:
        try:
            stage(conn)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            if self.error is None:
                self.error = exc
            self.failed.set()

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Put, unless another writer failed (then nobody would take it)."""
        while not self.failed.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _write_whole(self, conn: Any) -> None:
        while (batch := self.batches.get()) is not None:
            _write_days(conn, batch, self.ids, self.result)
            self.written.put(len(batch))

    def _list(self, conn: Any) -> None:
        while (batch := self.batches.get()) is not None:
            _list_days(conn, batch, self.ids, self.result)
            if not self._put(self.listed, batch):
                return
        self._put(self.listed, None)

    def _buy(self, conn: Any) -> None:
        while (batch := self.listed.get()) is not None:
            _buy_days(conn, batch, self.ids, self.result)
            self.written.put(len(batch))

    def _check(self) -> None:
        if self.error is not None:
            raise self.error
        if not any(thread.is_alive() for thread in self.threads):
            raise RuntimeError("the history writer threads stopped")

    def put(
        self,
        batch: list[_Day],
        on_day: Callable[[int, BackfillResult], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        while True:
            self._check()
            try:
                self.batches.put(batch, timeout=0.2)
                return
            except queue.Full:
                self.report(on_day)
                if should_stop is not None and should_stop():
                    return  # the batch is dropped: the caller stops planning

    def report(self, on_day: Callable[[int, BackfillResult], None] | None) -> None:
        while True:
            try:
                count = self.written.get_nowait()
            except queue.Empty:
                return
            first_day = self.result.days
            self.result.days += count
            if on_day is not None:
                for index in range(first_day, self.result.days):
                    on_day(index, self.result)

    def finish(self, on_day: Callable[[int, BackfillResult], None] | None) -> None:
        """Wait for every batch handed over to be written."""
        self._put(self.batches, None)
        for thread in self.threads:
            while thread.is_alive():
                thread.join(timeout=0.2)
                self.report(on_day)
        self.report(on_day)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop after the batches being written (each stage commits what it started, so the
        purchases of every committed listing batch are written too); batches not started
        are dropped."""
        if any(thread.is_alive() for thread in self.threads):
            while True:
                try:
                    self.batches.get_nowait()
                except queue.Empty:
                    break
            self._put(self.batches, None)
            if self.failed.is_set():
                # a stage that failed takes nothing more: unblock the other one
                for q in (self.batches, self.listed):
                    with contextlib.suppress(queue.Full):
                        q.put_nowait(None)
            for thread in self.threads:
                thread.join()
        self.report(None)


def _write_days(conn: Any, plans: list[_Day], ids: list[int], result: BackfillResult) -> None:
    """Consecutive days in one transaction: their listings in one ``add_products``, then their
    purchases, in time order, in one ``purchase_many`` (a purchase only ever names an item
    listed before it, and no item is offered on two days after it sold, so the batch answers
    each purchase as day-by-day writing would)."""
    try:
        new_ids = _add_listings(conn, plans)
        outcomes = _purchase(conn, plans, [*ids, *new_ids])
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    ids.extend(new_ids)
    result.products += len(new_ids)
    _count(plans, outcomes, result)


def _list_days(conn: Any, plans: list[_Day], ids: list[int], result: BackfillResult) -> None:
    """The listings of consecutive days, one transaction (the pipeline's first stage)."""
    try:
        new_ids = _add_listings(conn, plans)
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    ids.extend(new_ids)
    result.products += len(new_ids)


def _buy_days(conn: Any, plans: list[_Day], ids: list[int], result: BackfillResult) -> None:
    """The purchases of consecutive days whose listings are committed, one transaction."""
    try:
        outcomes = _purchase(conn, plans, ids)
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise
    _count(plans, outcomes, result)


def _add_listings(conn: Any, plans: list[_Day]) -> list[int]:
    return add_products(conn, [item for plan in plans for item in plan.products], commit=False)


def _purchase(conn: Any, plans: list[_Day], ids: list[int]) -> list[PurchaseOutcome]:
    return purchase_many(
        conn,
        [(ids[i], request, at) for plan in plans for i, request, at, _c in plan.purchases],
        commit=False,
    )


def _count(plans: list[_Day], outcomes: list[PurchaseOutcome], result: BackfillResult) -> None:
    purchases = [p for plan in plans for p in plan.purchases]
    for (_i, _request, at, category), outcome in zip(purchases, outcomes, strict=True):
        if outcome.order is not None and outcome.created:
            result.orders += 1
            result.revenue += outcome.order.price
            result.orders_by_category[category] = result.orders_by_category.get(category, 0) + 1
            result.first = at if result.first is None else min(result.first, at)
            result.last = at if result.last is None else max(result.last, at)
        elif outcome.order is not None:
            result.replays += 1
        elif isinstance(outcome.error, AlreadySold):
            result.already_sold += 1
        elif isinstance(outcome.error, IdempotencyConflict):
            result.conflicts += 1
        elif outcome.error is not None:
            raise outcome.error
