"""A realistic demo catalog: a few hundred products over several categories.

Deterministic for a given seed, so screenshots, tests and benchmarks see the same shop.
Goes through the same validation as the API, so the demo data obeys the API's rules.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from psycopg2.extras import execute_values

from hybridshop.core.models import NewProduct
from hybridshop.core.validation import parse_new_product

# category -> (price range in EUR, brands, adjectives, nouns, a sentence about the use)
CATALOG: dict[str, tuple[tuple[int, int], list[str], list[str], list[str], str]] = {
    "electronics": (
        (15, 1200),
        ["Voltra", "Nordtek", "Sonique", "Pixelia"],
        ["Wireless", "Compact", "Smart", "Noise-Cancelling", "Portable", "4K"],
        ["Headphones", "Speaker", "Monitor", "Keyboard", "Webcam", "Power Bank", "Router"],
        "Built for everyday use at home or in the office.",
    ),
    "home-garden": (
        (8, 400),
        ["Casa Verde", "Oakline", "Hygge Co", "Terracota"],
        ["Ceramic", "Oak", "Linen", "Stainless", "Handmade", "Recycled"],
        ["Planter", "Lamp", "Cutting Board", "Throw Blanket", "Watering Can", "Vase", "Chair"],
        "Designed to last and easy to care for.",
    ),
    "books": (
        (6, 60),
        ["Atlas Press", "Marea Books", "Quill & Co"],
        ["Illustrated", "Pocket", "Collector's", "Annotated", "Hardcover"],
        ["Cookbook", "Travel Guide", "Novel", "Field Guide", "Atlas", "Poetry Collection"],
        "A favourite of our readers, printed on recycled paper.",
    ),
    "clothing": (
        (12, 250),
        ["Monte Alto", "Brisa", "Northway"],
        ["Organic Cotton", "Merino", "Waterproof", "Slim-Fit", "Vintage", "Linen"],
        ["T-Shirt", "Sweater", "Rain Jacket", "Jeans", "Scarf", "Sneakers", "Cap"],
        "Comfortable fit with a timeless cut.",
    ),
    "sports": (
        (10, 900),
        ["Pulse", "Cumbre", "Tideline"],
        ["Lightweight", "Carbon", "Foldable", "Pro", "Trail"],
        ["Yoga Mat", "Running Shoes", "Bike Helmet", "Tent", "Backpack", "Dumbbell Set"],
        "Tested outdoors by people who use it every week.",
    ),
    "toys": (
        (5, 150),
        ["Kiddo", "Tinker", "Lumo"],
        ["Wooden", "Magnetic", "Glow-in-the-Dark", "Classic", "Educational"],
        ["Puzzle", "Building Blocks", "Board Game", "Kite", "Train Set", "Plush Bear"],
        "Safe materials, certified for ages 3 and up.",
    ),
    "beauty": (
        (4, 120),
        ["Aloe & Sal", "Petal", "Dermia"],
        ["Vegan", "Fragrance-Free", "Hydrating", "Mineral", "Travel-Size"],
        ["Face Cream", "Shampoo", "Lip Balm", "Sunscreen", "Soap Bar", "Serum"],
        "Dermatologically tested and cruelty-free.",
    ),
    "grocery": (
        (2, 45),
        ["Huerta", "Olivar", "Cafe Sierra"],
        ["Organic", "Extra Virgin", "Single-Origin", "Artisan", "Smoked"],
        ["Olive Oil", "Coffee Beans", "Honey", "Sea Salt", "Pasta", "Dark Chocolate", "Tea"],
        "Sourced from small producers we know by name.",
    ),
}


def generate_products(count: int = 300, seed: int = 42) -> list[NewProduct]:
    """``count`` distinct, validated demo products, spread evenly over the categories."""
    rng = random.Random(seed)
    products: list[NewProduct] = []
    seen: set[str] = set()
    categories = list(CATALOG)
    attempts = 0
    while len(products) < count:
        attempts += 1
        category = categories[len(products) % len(categories)]
        (low, high), brands, adjectives, nouns, blurb = CATALOG[category]
        name = f"{rng.choice(brands)} {rng.choice(adjectives)} {rng.choice(nouns)}"
        if name in seen and attempts < count * 20:
            continue
        if name in seen:
            name = f"{name} #{len(products) + 1}"
        seen.add(name)
        cents = rng.randint(low * 100, high * 100)
        price = Decimal(cents // 50 * 50 - 1 if cents > 100 else cents) / 100  # ...x.49 / ...x.99
        description = f"{name}. {blurb}"
        products.append(
            parse_new_product(
                {
                    "name": name,
                    "price": str(price),
                    "category": category,
                    "description": description,
                    "currency": "EUR",
                }
            )
        )
    return products


def insert_products(conn: Any, products: list[NewProduct]) -> int:
    with conn.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO products (name, description, category, price, currency, image_url) VALUES %s",
            [
                (p.name, p.description, p.category, p.price, p.currency, p.image_url)
                for p in products
            ],
            page_size=1000,
        )
    conn.commit()
    return len(products)


def seed_if_empty(conn: Any, count: int = 300, seed: int = 42) -> int:
    """Seed the demo catalog only when there are no products yet; return rows inserted."""
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM products)")
        has_rows = cur.fetchone()[0]
    conn.commit()
    if has_rows:
        return 0
    return insert_products(conn, generate_products(count, seed))
