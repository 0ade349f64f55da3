"""Run the shop in-process on a background thread (local stack, tests, benchmarks).

Production uses gunicorn (see app/flask-app/Dockerfile); locally a threaded werkzeug server
is enough, starts in milliseconds and stops cleanly with the rest of ``hybridshop up``.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from hybridshop.settings import local_metadata_url
from hybridshop.web.app import create_app
from hybridshop.web.settings import WebSettings
from hybridshop.web.state import EXTENSION, ShopState


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler without its ``Server: Werkzeug/x Python/y`` version banner."""

    def version_string(self) -> str:
        return "hybridshop"


class _QuietHandler(_Handler):
    """No per-request access lines: ``hybridshop up`` keeps its terminal readable."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class WebServer:
    """A running shop: ``.url``, ``.app`` and ``.stop()``."""

    def __init__(self, app: Flask, server: BaseWSGIServer) -> None:
        self.app = app
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="hybridshop-web", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def port(self) -> int:
        return int(self._server.port)

    def start(self) -> WebServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Foreground (CLI); returns after Ctrl-C."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._close()

    def is_alive(self) -> bool:
        """True while the serving thread runs (for ``hybridshop up``'s supervisor)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        self._server.server_close()
        state: ShopState = self.app.extensions[EXTENSION]
        state.close()


def make_web_server(
    api_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    audience: str | None = None,
    metadata_url: str | None = None,
    secret_key: str | None = None,
    admin_token: str | None = None,
    access_log: bool = False,
) -> WebServer:
    """Build (but do not start) a development shop server; port 0 picks a free port.

    With ``audience`` set the shop sends ID tokens from ``metadata_url`` (default: the local
    gateway's development issuer on its own loopback listener), exactly as on Cloud Run.
    """
    settings = WebSettings(
        api_base_url=api_url,
        api_audience=audience or "",
        secret_key=secret_key or "",
        environment="development",
        metadata_server_url=metadata_url or local_metadata_url(),
        admin_token=admin_token or "",
    )
    app = create_app(settings)
    handler = _Handler if access_log else _QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    logging.getLogger("hybridshop.web").info("shop listening on http://%s:%d", host, server.port)
    return WebServer(app, server)


def start_web(
    api_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    audience: str | None = None,
    metadata_url: str | None = None,
    secret_key: str | None = None,
    admin_token: str | None = None,
) -> WebServer:
    """Start the shop on a background thread and return once it is listening."""
    return make_web_server(
        api_url,
        host,
        port,
        audience=audience,
        metadata_url=metadata_url,
        secret_key=secret_key,
        admin_token=admin_token,
    ).start()
