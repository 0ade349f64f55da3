"""The shop's per-app state, and how a view reaches it: ``shop()`` during a request.

Views import this small module, never the app factory (``web.app``), as in Flask's tutorial;
the factory creates one ``ShopState`` per app and stores it in ``app.extensions``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import current_app

from hybridshop.web.api_client import ApiClient
from hybridshop.web.settings import WebSettings
from hybridshop.web.tokens import IdTokenSource

EXTENSION = "hybridshop"
# The sidebar's category list (with counts) may lag by this much when *another* instance
# sells or adds; it saves one API round trip on almost every catalog page.
CATEGORIES_TTL_S = 10.0


class ShopState:
    """Per-app objects shared across requests and threads (the API session, a small pool)."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        tokens = (
            IdTokenSource(settings.metadata_server_url, settings.api_audience)
            if settings.api_audience
            else None
        )
        self.api = ApiClient(
            settings.api_base_url,
            token_source=tokens,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            get_retries=settings.get_retries,
        )
        # Lets a page issue its independent API calls in parallel instead of back to back.
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="shop-api")
        self._categories: tuple[float, list[dict[str, Any]]] | None = None
        self._categories_lock = threading.Lock()

    def cached_categories(self) -> list[dict[str, Any]] | None:
        """The category list if fetched less than CATEGORIES_TTL_S ago, else None."""
        cached = self._categories
        if cached is not None and time.monotonic() - cached[0] < CATEGORIES_TTL_S:
            return cached[1]
        return None

    def fetch_categories(self) -> list[dict[str, Any]]:
        items = self.api.categories()
        with self._categories_lock:
            self._categories = (time.monotonic(), items)
        return items

    def forget_categories(self) -> None:
        """After this shop changed the catalog, show fresh counts right away."""
        with self._categories_lock:
            self._categories = None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.api.close()


def shop() -> ShopState:
    state: ShopState = current_app.extensions[EXTENSION]
    return state
