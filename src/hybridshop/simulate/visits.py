"""Shoppers and sellers: what one visit to the shop does, request by request.

A visit is planned from the seed alone (its kind, start time and a private random stream);
what it opens and buys then depends on what the API answers, as for a real person. With one
worker against the same starting catalog, the same seed therefore sends the same requests.

Kinds of visit:
- ``browse``: maybe the category list, a category page (categories by popularity, which
  drifts), sometimes the next page, one to three products, and maybe a purchase;
- ``search``: a search for a word shoppers of a category type, a product, maybe a purchase;
- ``home``: the newest items and one of them;
- ``seller``: one to three new listings with plausible names, descriptions and prices (now and
  then a price typed with three decimals, refused with 422 and corrected);
- ``stale``: a shopper on an old page buys an item that was sold minutes ago (409).
A purchase is sometimes double-clicked: the same ``Idempotency-Key`` sent twice, answered with
the same order (``idempotent-replayed``). These answers are counted as expected mistakes.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hybridshop.simulate import model
from hybridshop.simulate.client import Answer

VISIT_KINDS: tuple[tuple[str, float, float], ...] = (
    # kind, share of visits, mean requests per visit (measured; turns --rate into visits/s)
    ("browse", 0.50, 3.7),
    ("search", 0.15, 2.1),
    ("home", 0.09, 2.0),
    ("seller", 0.23, 1.75),
    ("stale", 0.03, 2.0),
)
MEAN_REQUESTS = sum(share * steps for _, share, steps in VISIT_KINDS)
DOUBLE_CLICK_SHARE = 0.04
SELLER_TYPO_SHARE = 0.05
PAGE_SIZE = 24
CHANNELS = (("web", 0.68), ("mobile", 0.27), ("api", 0.05))
CONVERSION = {  # chance that a browsing visit in the category ends with a purchase
    "electronics": 0.30,
    "clothing": 0.38,
    "home-garden": 0.34,
    "books": 0.42,
    "sports": 0.32,
    "beauty": 0.45,
    "toys": 0.40,
    "grocery": 0.50,
}

Route = str  # "GET /products/{id}"


@dataclass(frozen=True)
class Visit:
    index: int
    at: float  # planned start, seconds after the start of the run
    kind: str


def plan_visits(
    seed: int,
    rate: float,
    duration: float | None,
    speedup: float = 0.0,
    start: datetime | None = None,
) -> Iterator[Visit]:
    """Visits as a Poisson process whose request rate is ``rate`` on average (steady), or
    ``rate`` times the time-of-day/day-of-week intensity of the simulated clock, which runs
    ``speedup`` times faster than the wall clock from ``start``."""
    rng = random.Random(f"plan:{seed}")
    kinds = [k for k, _, _ in VISIT_KINDS]
    # what choices(kinds, weights) accumulates on every call, once (the same draws)
    cum_weights = list(itertools.accumulate(share for _, share, _ in VISIT_KINDS))
    t = 0.0
    index = 0
    while True:
        level = 1.0
        if speedup > 0 and start is not None:
            level = max(0.05, model.intensity(start + timedelta(seconds=t * speedup)))
        t += rng.expovariate(rate * level / MEAN_REQUESTS)
        if duration is not None and t >= duration:
            return
        yield Visit(index, t, rng.choices(kinds, cum_weights=cum_weights)[0])
        index += 1


class SharedState:
    """What shoppers learn from each other: items sold recently (for stale pages)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recently_sold: deque[int] = deque(maxlen=200)

    def sold(self, product_id: int) -> None:
        with self.lock:
            self.recently_sold.append(product_id)

    def a_sold_item(self, rng: random.Random) -> int | None:
        with self.lock:
            if not self.recently_sold:
                return None
            return self.recently_sold[rng.randrange(len(self.recently_sold))]


Send = Callable[..., Answer]


def _choice(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for name, share in pairs:
        if x < share:
            return name
        x -= share
    return pairs[0][0]


def _items(answer: Answer) -> list[dict[str, Any]]:
    if answer.status == 200 and isinstance(answer.body, dict):
        items = answer.body.get("items")
        if isinstance(items, list):
            return [i for i in items if isinstance(i, dict) and isinstance(i.get("id"), int)]
    return []


class VisitRunner:
    """Runs visits for one worker; ``send(visit, step, action, route, method, path, ...)``
    performs one request, records it and returns the answer."""

    def __init__(
        self,
        seed: int,
        send: Send,
        shared: SharedState,
        shares: Callable[[], dict[str, float]],
        stopping: Callable[[], bool],
    ) -> None:
        self.seed = seed
        self.send = send
        self.shared = shared
        self.shares = shares
        self.stopping = stopping
        self.supply = model.supply_shares()

    def run(self, visit: Visit) -> None:
        rng = random.Random(f"visit:{self.seed}:{visit.index}")
        steps = _Steps(self, visit, rng)
        getattr(steps, visit.kind)()


class _Steps:
    def __init__(self, runner: VisitRunner, visit: Visit, rng: random.Random) -> None:
        self.r = runner
        self.visit = visit
        self.rng = rng
        self.step = 0
        self.next_cursor: str | None = None
        n = min(int(rng.paretovariate(1.2)) - 1, 19_999)
        self.shopper = f"shopper-{(n or rng.randrange(20_000)):05d}"

    def _send(self, action: str, route: Route, method: str, path: str, **kw: Any) -> Answer | None:
        if self.r.stopping():
            return None
        self.step += 1
        return self.r.send(self.visit, self.step, action, route, method, path, **kw)

    # -- building blocks ---------------------------------------------------------------------

    def _list(self, action: str, **query: str) -> list[dict[str, Any]]:
        query = {"limit": str(PAGE_SIZE), **query}
        answer = self._send(action, "GET /products", "GET", "/products", query=query)
        self.next_cursor = None
        if answer is not None and isinstance(answer.body, dict):
            cursor = answer.body.get("next_cursor")
            self.next_cursor = cursor if isinstance(cursor, str) else None
        return _items(answer) if answer else []

    def _open(self, item: dict[str, Any]) -> dict[str, Any] | None:
        pid = item["id"]
        answer = self._send("open", "GET /products/{id}", "GET", f"/products/{pid}")
        if answer and answer.status == 200 and isinstance(answer.body, dict):
            return answer.body
        return None

    def _buy(self, product_id: int, action: str = "buy") -> Answer | None:
        body = {"buyer_ref": self.shopper, "channel": _choice(self.rng, CHANNELS)}
        headers = {"Idempotency-Key": f"sim-{self.r.seed}-{self.visit.index}-{product_id}"}
        route = "POST /products/{id}/purchase"
        path = f"/products/{product_id}/purchase"
        answer = self._send(action, route, "POST", path, body=body, headers=headers)
        if answer is not None and answer.status == 200:
            self.r.shared.sold(product_id)
            if self.rng.random() < DOUBLE_CLICK_SHARE:
                # a double click: the same request, same key, right after the first answer
                self._send("double-click", route, "POST", path, body=body, headers=headers)
        return answer

    def _maybe_buy(self, opened: list[dict[str, Any]], conversion: float) -> None:
        available = [p for p in opened if p.get("available") is True]
        if available and self.rng.random() < conversion:
            self._buy(int(self.rng.choice(available)["id"]))

    # -- kinds of visit ----------------------------------------------------------------------

    def browse(self) -> None:
        shares = self.r.shares()
        if self.rng.random() < 0.3:
            self._send("categories", "GET /categories", "GET", "/categories")
        category = model.weighted_choice(self.rng, shares)
        items = self._list("browse", category=category)
        if self.next_cursor and self.rng.random() < 0.2:
            items = self._list("next-page", category=category, cursor=self.next_cursor) or items
        opened = []
        for _ in range(self.rng.choice((1, 1, 2, 2, 3))):
            if not items:
                break
            detail = self._open(self.rng.choice(items))
            if detail is not None:
                opened.append(detail)
        self._maybe_buy(opened, CONVERSION[category])

    def search(self) -> None:
        category = model.BY_NAME[model.weighted_choice(self.rng, self.r.shares())]
        term = self.rng.choice(model.search_terms(category))
        items = self._list("search", q=term)
        if items and self.rng.random() < 0.8:
            detail = self._open(self.rng.choice(items))
            if detail is not None:
                self._maybe_buy([detail], 0.3)

    def home(self) -> None:
        items = self._list("home")
        if items:
            self._open(self.rng.choice(items[:12]))

    def seller(self) -> None:
        category = model.BY_NAME[model.weighted_choice(self.rng, self.r.supply)]
        for _ in range(self.rng.choice((1, 1, 1, 2, 2, 3))):
            fields = model.product_fields(
                self.rng, category, self.visit.index * 10 + self.step % 10
            )
            if self.rng.random() < SELLER_TYPO_SHARE:
                typo = dict(fields, price=fields["price"] + "9")  # "24.99" -> "24.999"
                self._send("list-typo", "POST /products", "POST", "/products", body=typo)
            self._send("list", "POST /products", "POST", "/products", body=fields)

    def stale(self) -> None:
        product_id = self.r.shared.a_sold_item(self.rng)
        if product_id is None:
            items = self._list("browse-sold", include_sold="true")
            sold = [i["id"] for i in items if i.get("available") is False]
            if not sold:
                return
            product_id = int(self.rng.choice(sold))
        else:
            self._send("open", "GET /products/{id}", "GET", f"/products/{product_id}")
        self._buy(product_id, action="stale-buy")
