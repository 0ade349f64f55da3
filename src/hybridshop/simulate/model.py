"""What the simulated shop looks like: categories, prices, names, popularity and time patterns.

One model feeds both the live simulation (requests through the API) and the history backfill
(core functions with past timestamps), so dashboards built on either look alike:

- **Categories** differ in demand (popularity), supply (what sellers list) and price: each has
  a log-normal price around its own median, and a small share of premium items priced several
  times higher (a few expensive items per category).
- **Popularity drifts**: each category's weight moves over days along two slow waves with
  phases drawn from the seed (a trend of months and a swing of weeks), plus a toy season in
  November and December.
- **Time patterns**: quiet nights, a lunch bump and an evening peak, later mornings at weekends,
  busier Saturdays and Sundays (``intensity``, mean 1 over a week).

Everything is a pure function of the seed, so runs with the same seed see the same shop.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hybridshop.db.seed import CATALOG


@dataclass(frozen=True)
class CategoryModel:
    name: str
    popularity: float  # share of demand (purchases, views) before drift
    supply: float  # share of new listings
    median_price: float  # EUR, log-normal median
    sigma: float  # log-normal spread
    premium_share: float  # probability that an item is a premium one
    premium_factor: tuple[float, float]  # premium price multiplier range
    min_price: float
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    blurb: str


def _category(
    name: str,
    popularity: float,
    supply: float,
    median: float,
    sigma: float,
    premium: float,
    factor: tuple[float, float],
) -> CategoryModel:
    (low, _high), brands, adjectives, nouns, blurb = CATALOG[name]
    return CategoryModel(
        name=name,
        popularity=popularity,
        supply=supply,
        median_price=median,
        sigma=sigma,
        premium_share=premium,
        premium_factor=factor,
        min_price=max(1.0, low * 0.5),
        brands=tuple(brands),
        adjectives=tuple(adjectives),
        nouns=tuple(nouns),
        blurb=blurb,
    )


CATEGORIES: tuple[CategoryModel, ...] = (
    _category("electronics", 0.22, 0.18, 89.0, 0.85, 0.04, (5.0, 15.0)),
    _category("clothing", 0.18, 0.17, 34.0, 0.55, 0.02, (4.0, 8.0)),
    _category("home-garden", 0.14, 0.14, 32.0, 0.75, 0.03, (4.0, 10.0)),
    _category("books", 0.11, 0.14, 15.0, 0.40, 0.01, (5.0, 20.0)),
    _category("sports", 0.10, 0.10, 42.0, 0.85, 0.03, (4.0, 12.0)),
    _category("beauty", 0.10, 0.11, 14.0, 0.55, 0.02, (3.0, 6.0)),
    _category("toys", 0.09, 0.09, 21.0, 0.60, 0.02, (3.0, 8.0)),
    _category("grocery", 0.06, 0.07, 7.0, 0.50, 0.01, (3.0, 6.0)),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
BY_NAME = {c.name: c for c in CATEGORIES}

# Relative activity per hour of the day (local time): weekdays and weekends.
WEEKDAY_HOURS = (
    0.30, 0.18, 0.12, 0.10, 0.10, 0.15, 0.35, 0.60, 0.85, 0.95, 1.00, 1.10,
    1.30, 1.25, 1.05, 1.00, 1.05, 1.20, 1.45, 1.75, 1.95, 1.85, 1.30, 0.70,
)  # fmt: skip
WEEKEND_HOURS = (
    0.45, 0.30, 0.18, 0.12, 0.10, 0.10, 0.15, 0.30, 0.55, 0.85, 1.15, 1.35,
    1.45, 1.40, 1.30, 1.25, 1.30, 1.40, 1.55, 1.75, 1.85, 1.70, 1.25, 0.80,
)  # fmt: skip
# Monday .. Sunday
WEEKDAY_FACTOR = (0.90, 0.88, 0.92, 0.97, 1.05, 1.30, 1.22)


def _week_mean() -> float:
    total = 0.0
    for day in range(7):
        hours = WEEKEND_HOURS if day >= 5 else WEEKDAY_HOURS
        total += WEEKDAY_FACTOR[day] * sum(hours)
    return total / (7 * 24)


_WEEK_MEAN = _week_mean()


def hour_profile(weekday: int) -> tuple[float, ...]:
    """The 24 relative hourly weights of a day (0 = Monday), before the weekday factor."""
    return WEEKEND_HOURS if weekday >= 5 else WEEKDAY_HOURS


def intensity(moment: datetime) -> float:
    """Relative activity at ``moment`` (local time of the shop): 1.0 is the weekly mean."""
    weekday = moment.weekday()
    hours = hour_profile(weekday)
    # interpolate between hours so the rate has no steps
    position = moment.hour + moment.minute / 60 + moment.second / 3600
    low = int(position) % 24
    frac = position - int(position)
    value = hours[low] * (1 - frac) + hours[(low + 1) % 24] * frac
    return WEEKDAY_FACTOR[weekday] * value / _WEEK_MEAN


def day_factor(weekday: int) -> float:
    """How busy a whole day is relative to the weekly mean."""
    return WEEKDAY_FACTOR[weekday] * sum(hour_profile(weekday)) / 24 / _WEEK_MEAN


@dataclass(frozen=True)
class Drift:
    """Per-category popularity waves, drawn once from the seed."""

    waves: tuple[tuple[float, float, float, float, float, float], ...]

    @classmethod
    def from_seed(cls, seed: int) -> Drift:
        rng = random.Random(f"drift:{seed}")
        waves = []
        for _ in CATEGORIES:
            waves.append(
                (
                    rng.uniform(0.15, 0.35),  # trend amplitude (log)
                    rng.uniform(90, 240),  # trend period, days
                    rng.uniform(0, 2 * math.pi),
                    rng.uniform(0.05, 0.15),  # swing amplitude
                    rng.uniform(12, 40),  # swing period, days
                    rng.uniform(0, 2 * math.pi),
                )
            )
        return cls(tuple(waves))

    def shares(self, day: float, month: int | None = None) -> dict[str, float]:
        """Demand share of each category on ``day`` (days since the Unix epoch); sums to 1."""
        weights = {}
        for cat, (a1, p1, f1, a2, p2, f2) in zip(CATEGORIES, self.waves, strict=True):
            log_w = a1 * math.sin(2 * math.pi * day / p1 + f1) + a2 * math.sin(
                2 * math.pi * day / p2 + f2
            )
            if cat.name == "toys" and month in (11, 12):
                log_w += 0.6 if month == 12 else 0.3
            weights[cat.name] = cat.popularity * math.exp(log_w)
        total = sum(weights.values())
        return {name: w / total for name, w in weights.items()}


def supply_shares() -> dict[str, float]:
    total = sum(c.supply for c in CATEGORIES)
    return {c.name: c.supply / total for c in CATEGORIES}


def _retail(amount: float) -> Decimal:
    """A shop price: 2 decimals, ending in .99 / .49 / .95 like real price tags."""
    if amount < 2:
        return Decimal(f"{max(amount, 0.5):.2f}")
    whole = int(amount)
    if amount < 20:
        cents = (99, 49, 95)[whole % 3]
        return Decimal(f"{whole}.{cents:02d}") if whole >= 1 else Decimal("0.99")
    if amount < 200:
        return Decimal(f"{whole - whole % 5 + 4}.99")
    return Decimal(f"{whole - whole % 10 + 9}.00")


def price(rng: random.Random, category: CategoryModel) -> Decimal:
    """A price for a new listing: log-normal around the category median, sometimes premium."""
    amount = rng.lognormvariate(math.log(category.median_price), category.sigma)
    if rng.random() < category.premium_share:
        amount *= rng.uniform(*category.premium_factor)
    amount = min(max(amount, category.min_price), 50_000.0)
    return _retail(amount)


CONDITIONS = (
    "Brand new in its box.",
    "New, never used.",
    "Like new: used twice, no marks.",
    "Very good condition, light signs of use.",
    "Good condition, fully working.",
)
EXTRAS = {
    "electronics": ("Charger and cable included.", "Two-year warranty.", "EU plug."),
    "clothing": ("Sizes S to XL.", "Machine washable at 30 °C.", "Runs slightly small."),
    "home-garden": ("Fits most rooms.", "Easy to assemble.", "Indoor and outdoor use."),
    "books": ("First edition.", "Paperback, 320 pages.", "Signed by the author."),
    "sports": ("Suitable for beginners.", "Used for one season.", "Carry bag included."),
    "beauty": ("50 ml.", "Suitable for sensitive skin.", "Sealed."),
    "toys": ("All pieces included.", "Batteries not included.", "Ages 6 and up."),
    "grocery": ("Best before next year.", "500 g.", "Pack of 2."),
}
VARIANTS = ("Black", "White", "Blue", "Green", "Grey", "Red", "Natural", "Large", "Small")


def product_fields(rng: random.Random, category: CategoryModel, serial: int) -> dict[str, Any]:
    """The JSON body a seller would send to ``POST /products`` for a new listing."""
    brand = rng.choice(category.brands)
    adjective = rng.choice(category.adjectives)
    noun = rng.choice(category.nouns)
    variant = rng.choice(VARIANTS)
    if category.name == "electronics":
        name = f"{brand} {adjective} {noun} {rng.choice('XSM')}{rng.randint(1, 9)}0"
    elif category.name in ("books", "grocery"):
        name = f"{brand} {adjective} {noun}"
    else:
        name = f"{brand} {adjective} {noun}, {variant}"
    description = (
        f"{adjective} {noun.lower()} by {brand}. {category.blurb} "
        f"{rng.choice(CONDITIONS)} {rng.choice(EXTRAS[category.name])} Ref. {serial:06d}."
    )
    return {
        "name": name,
        "description": description,
        "category": category.name,
        "price": str(price(rng, category)),
        "currency": "EUR",
    }


def search_terms(category: CategoryModel) -> tuple[str, ...]:
    """What shoppers type in the search box for this category."""
    return tuple(n.split()[-1].lower() for n in category.nouns) + tuple(
        b.split()[0] for b in category.brands
    )


def weighted_choice(rng: random.Random, shares: dict[str, float]) -> str:
    """A key of ``shares`` with probability equal to its share (one random draw)."""
    x = rng.random()
    acc = 0.0
    last = ""
    for name, share in shares.items():
        acc += share
        last = name
        if x < acc:
            return name
    return last
