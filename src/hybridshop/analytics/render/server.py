"""Serve the dashboards on a background thread (``hybridshop up``) or in the foreground.

A threaded werkzeug server, as the local shop uses (web/server.py): it starts in
milliseconds and stops with the rest of ``hybridshop up``. Each request runs its DuckDB
queries on its own cursor of the read-only warehouse.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from hybridshop.analytics.render import bundle
from hybridshop.analytics.render.app import LOOPBACK_NAMES, create_app
from hybridshop.analytics.render.service import DashboardService
from hybridshop.analytics.render.warehouse import WarehouseFile

log = logging.getLogger("hybridshop.dashboards")


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler without its ``Server: Werkzeug/x Python/y`` version banner."""

    def version_string(self) -> str:
        return "hybridshop"


class _QuietHandler(_Handler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class DashboardServer:
    """A running dashboards server: ``.url``, ``.service``, ``.stop()``."""

    def __init__(self, service: DashboardService, server: BaseWSGIServer) -> None:
        self.service = service
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="hybridshop-dashboards", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def port(self) -> int:
        return int(self._server.port)

    def start(self) -> DashboardServer:
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
        bundle.stop_warming()
        self._server.server_close()
        self.service.warehouse.close()


def make_dashboard_server(
    warehouse: Path,
    host: str = "127.0.0.1",
    port: int = 8090,
    *,
    project_dir: Path | None = None,
    access_log: bool = False,
    hold_open: bool | None = None,
    **service_kwargs: Any,
) -> DashboardServer:
    """Build (not start) a server for the dashboards of ``project_dir`` on ``warehouse``
    (``hold_open``: see ``WarehouseFile``; default: hold a replicator's read copy open)."""
    service = DashboardService(
        WarehouseFile(warehouse, hold_open=hold_open), project_dir, **service_kwargs
    )
    loopback = host in {"127.0.0.1", "localhost", "::1"}
    app = create_app(service, allowed_hosts=set(LOOPBACK_NAMES) if loopback else None)
    handler = _Handler if access_log else _QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    bundle.warm()  # the first page should not wait for the charting bundle
    log.info("dashboards on http://%s:%d", host, server.port)
    return DashboardServer(service, server)


def start_dashboards(
    warehouse: Path,
    host: str = "127.0.0.1",
    port: int = 8090,
    *,
    project_dir: Path | None = None,
    **service_kwargs: Any,
) -> DashboardServer:
    """Start serving on a background thread; returns once the socket listens."""
    return make_dashboard_server(
        warehouse, host, port, project_dir=project_dir, **service_kwargs
    ).start()
