"""The web shop (Google Cloud Run in production): a Flask app that reaches the catalog only
through the HTTP API. ``create_app`` builds it; ``start_web`` runs it in-process for
``hybridshop up``, tests and benchmarks.
"""

from __future__ import annotations

from hybridshop.web.app import create_app
from hybridshop.web.server import WebServer, start_web
from hybridshop.web.settings import WebSettings

__all__ = ["WebServer", "WebSettings", "create_app", "start_web"]
