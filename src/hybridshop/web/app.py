"""The Flask application factory: settings -> API client -> blueprints, headers, errors."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from hybridshop.web import formatting, security
from hybridshop.web.api_client import ApiClient, ApiUnavailable
from hybridshop.web.settings import WebSettings
from hybridshop.web.tokens import IdTokenSource

log = logging.getLogger("hybridshop.web")

EXTENSION = "hybridshop"
# The sidebar's category list (with counts) may lag by this much when *another* instance
# sells or adds; it saves one API round trip on almost every catalog page.
CATEGORIES_TTL_S = 10.0

ERROR_TEXT = {
    400: ("That request didn't look right", "Please go back and try again."),
    404: ("We couldn't find that page", "The item may have been removed, or the link is wrong."),
    405: ("That action isn't allowed here", "Please use the buttons on the page."),
    413: ("That was too much", "The form you sent is too large."),
    500: ("Something went wrong on our side", "We've logged it. Please try again in a moment."),
    503: (
        "The shop is taking a short break",
        "We can't reach our catalog right now. Please try again in a moment.",
    ),
}


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


def _render_error(status: int, message: str | None = None) -> tuple[str, int]:
    title, text = ERROR_TEXT.get(status, ERROR_TEXT[500])
    return render_template("error.html", status=status, title=title, text=message or text), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiUnavailable)
    def api_unavailable(exc: ApiUnavailable) -> tuple[str, int]:
        log.warning("API unavailable, answering 503: %s", exc)
        return _render_error(503)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        status = exc.code or 500
        if status == 400 and exc.description == "csrf":
            return _render_error(
                400, "Your form expired or came from somewhere else. Please reload and try again."
            )
        return _render_error(status)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[str, int]:
        log.exception("unhandled error")
        return _render_error(500)


def create_app(settings: WebSettings | None = None) -> Flask:
    """Build the shop. Without arguments, settings come from the environment (Cloud Run)."""
    settings = (settings or WebSettings.from_env()).validated()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        # __Host- pins the cookie to this exact host over https (production only).
        SESSION_COOKIE_NAME="__Host-shop" if settings.production else "shop",
        PERMANENT_SESSION_LIFETIME=timedelta(days=30),
        MAX_CONTENT_LENGTH=64 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    if settings.production:
        # Cloud Run terminates TLS in front of us and sets one X-Forwarded-* hop.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = ShopState(settings)
    security.install(app, production=settings.production)
    formatting.install(app)
    _register_errors(app)

    from hybridshop.web import sellers
    from hybridshop.web.views import health, manage, storefront

    app.register_blueprint(health.bp)
    app.register_blueprint(storefront.bp)
    app.register_blueprint(manage.bp)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {
            "shop_env": settings.environment,
            "catalog_open": settings.catalog_open,
            "catalog_enabled": settings.catalog_enabled,
            "seller_signed_in": bool(settings.admin_token) and sellers.signed_in(),
        }

    return app
