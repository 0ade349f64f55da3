"""The Flask application factory: settings -> API client -> blueprints, headers, errors.

As in Flask's tutorial, the views never import this module: they reach the per-app objects
through ``web.state.shop()``, so the factory can import the views at the top.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from hybridshop.web import formatting, security, sellers
from hybridshop.web.api_client import ApiUnavailable
from hybridshop.web.settings import WebSettings
from hybridshop.web.state import EXTENSION, ShopState
from hybridshop.web.views import health, manage, storefront

log = logging.getLogger("hybridshop.web")

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
