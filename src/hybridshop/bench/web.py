"""``hybridshop bench web``: what the shop adds on top of the API call it makes.

Same run, same machine, interleaved: the catalog page (shop -> API -> PostgreSQL, render)
and the API call alone (GET /products, exactly as the page asks for it) against a catalog
of N products, on a private embedded PostgreSQL behind the real local gateway with JWT auth.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg2
import requests

from hybridshop.bench.stats import percentile
from hybridshop.db.embedded import EmbeddedPostgres, free_port
from hybridshop.db.migrate import apply_migrations
from hybridshop.gateway.authorizer import JwtAuthorizerConfig
from hybridshop.gateway.server import GatewayConfig, LocalGateway
from hybridshop.settings import LOCAL_API_AUDIENCE
from hybridshop.web.server import start_web
from hybridshop.web.tokens import IdTokenSource
from hybridshop.web.views.storefront import PAGE_SIZE

CATEGORIES = ("home", "kitchen", "fashion", "books", "garden", "toys", "art", "sports")
TARGET_RATIO = 1.30


def _timed(fn: Callable[[], requests.Response]) -> float:
    start = time.perf_counter()
    resp = fn()
    elapsed = (time.perf_counter() - start) * 1000
    if resp.status_code != 200:
        raise RuntimeError(f"{resp.request.method} {resp.url} answered {resp.status_code}")
    return elapsed


class _Gunicorn:
    """The Cloud Run start command (gunicorn, 1 worker, 8 threads) as a local subprocess."""

    def __init__(self, api_url: str, metadata_url: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PORT": str(port),
            "SHOP_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            "API_BASE_URL": api_url,
            "API_AUDIENCE": LOCAL_API_AUDIENCE,
            "METADATA_SERVER_URL": metadata_url,
        }
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.proc = subprocess.Popen(
            [
                gunicorn,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "--timeout",
                "0",
                "hybridshop.web.wsgi:app",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/health", timeout=1)
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=15)


def _measure(
    page: Callable[[], requests.Response],
    api: Callable[[], requests.Response],
    requests_n: int,
    warmup: int,
) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        _timed(page)
        _timed(api)
    page_ms: list[float] = []
    api_ms: list[float] = []
    for i in range(requests_n):
        # interleave (and alternate the order) so both see the same machine load
        if i % 2:
            page_ms.append(_timed(page))
            api_ms.append(_timed(api))
        else:
            api_ms.append(_timed(api))
            page_ms.append(_timed(page))
    return page_ms, api_ms


def _summary(page_ms: list[float], api_ms: list[float]) -> dict[str, Any]:
    page_p50, api_p50 = statistics.median(page_ms), statistics.median(api_ms)
    return {
        "page_p50_ms": round(page_p50, 2),
        "page_p99_ms": round(percentile(page_ms, 99), 2),
        "api_p50_ms": round(api_p50, 2),
        "api_p99_ms": round(percentile(api_ms, 99), 2),
        "ratio": round(page_p50 / api_p50, 3),
        "added_p50_ms": round(page_p50 - api_p50, 2),
    }


def _seed(gateway: LocalGateway, tokens: IdTokenSource, count: int) -> None:
    session = requests.Session()
    rng = random.Random(3)

    def add(i: int) -> None:
        body = {
            "name": f"Item {i:04d} {rng.choice(['oak', 'linen', 'brass', 'wool'])}",
            "price": f"{rng.randint(100, 50000) / 100:.2f}",
            "category": CATEGORIES[i % len(CATEGORIES)],
            "description": "A one-of-a-kind item for the benchmark catalog.",
        }
        resp = session.post(
            f"{gateway.url}/products",
            json=body,
            headers={"Authorization": f"Bearer {tokens.token()}"},
            timeout=30,
        )
        if resp.status_code != 201:
            raise RuntimeError(f"seeding failed: {resp.status_code} {resp.text}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(count)))


def run_web_bench(
    products: int = 1000, requests_n: int = 300, warmup: int = 30, out: Path | None = None
) -> dict[str, Any]:
    """Measure and write the results (``page_p50_ms``, ``page_p99_ms``, ``api_p50_ms``, ``ratio``)."""
    out = out or Path("bench-results") / "web.json"
    with tempfile.TemporaryDirectory(prefix="hybridshop-bench-web-") as tmp:
        server = EmbeddedPostgres(base_dir=Path(tmp) / "pg", port=free_port(), database="postgres")
        server.start()
        gateway: LocalGateway | None = None
        shop = None
        try:
            conn = psycopg2.connect(server.dsn("postgres"))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE bench_web")
            conn.close()
            conn = psycopg2.connect(server.dsn("bench_web"))
            apply_migrations(conn)
            conn.close()
            gateway = LocalGateway(
                GatewayConfig(
                    port=0,
                    env={"DATABASE_URL": server.dsn("bench_web"), "LOG_LEVEL": "WARNING"},
                    authorizer=JwtAuthorizerConfig.local((LOCAL_API_AUDIENCE,)),
                    local_issuer=True,
                    state_dir=Path(tmp) / "state",
                    quiet=True,
                )
            )
            gateway.start()
            metadata = gateway.metadata_url
            tokens = IdTokenSource(metadata, LOCAL_API_AUDIENCE)
            _seed(gateway, tokens, products)
            page_session, api_session = requests.Session(), requests.Session()
            api_params = {"limit": str(PAGE_SIZE), "include_sold": "true"}

            def api() -> requests.Response:
                return api_session.get(
                    f"{gw.url}/products",
                    params=api_params,
                    headers={"Authorization": f"Bearer {tokens.token()}"},
                    timeout=30,
                )

            gw = gateway
            runs: dict[str, dict[str, Any]] = {}
            # the bench gateway's own issuer: the default is `hybridshop up`'s metadata server
            shop = start_web(
                gateway.url, "127.0.0.1", 0, audience=LOCAL_API_AUDIENCE, metadata_url=metadata
            )
            shop_url = shop.url
            page_ms, api_ms = _measure(
                lambda: page_session.get(shop_url + "/", timeout=30), api, requests_n, warmup
            )
            runs["werkzeug"] = _summary(page_ms, api_ms)
            shop.stop()
            shop = None
            gunicorn = _Gunicorn(gateway.url, metadata)
            try:
                g_page_ms, g_api_ms = _measure(
                    lambda: page_session.get(gunicorn.url + "/", timeout=30),
                    api,
                    requests_n,
                    warmup,
                )
            finally:
                gunicorn.stop()
            runs["gunicorn"] = _summary(g_page_ms, g_api_ms)
        finally:
            if shop is not None:
                shop.stop()
            if gateway is not None:
                gateway.stop()
            server.stop(mode="immediate")

    # Headline: the production server (the Dockerfile's gunicorn command).
    result: dict[str, Any] = {
        **runs["gunicorn"],
        "target_ratio": TARGET_RATIO,
        "meets_target": runs["gunicorn"]["ratio"] < TARGET_RATIO,
        "servers": runs,
        "products": products,
        "requests": requests_n,
        "page_size": PAGE_SIZE,
        "page": "GET / (catalog, first page, 24 cards; categories cached up to 10 s)",
        "api": f"GET /products?limit={PAGE_SIZE}&include_sold=true with a Bearer ID token",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result
