"""The LookML dashboards rendered locally: a web server, a self-contained HTML and a PNG export.

- ``start_dashboards(warehouse, host, port)`` / ``make_dashboard_server``: the dashboards
  on http://127.0.0.1:8090 (``hybridshop dashboards serve``, and ``hybridshop up``).
- ``export_dashboards(out_dir, warehouse)``: per dashboard ``<name>.html`` (opens with no
  network: JavaScript and data inline) and ``<name>.png`` (drawn without a browser).
- ``DashboardService``: the tiles of a dashboard as data (what the views, the export and
  ``hybridshop bench bi`` use).

Charts are Vega-Lite specs (``vega.py``); vega, vega-lite and vega-embed come from the
vl-convert-python wheel (``bundle.py``), which also renders the PNGs.
"""

from __future__ import annotations

from hybridshop.analytics.render.server import (
    DashboardServer,
    make_dashboard_server,
    start_dashboards,
)
from hybridshop.analytics.render.service import DashboardData, DashboardService
from hybridshop.analytics.render.tiles import Tile
from hybridshop.analytics.render.warehouse import WarehouseFile, WarehouseUnavailable

__all__ = [
    "DashboardData",
    "DashboardServer",
    "DashboardService",
    "Tile",
    "WarehouseFile",
    "WarehouseUnavailable",
    "make_dashboard_server",
    "start_dashboards",
]
