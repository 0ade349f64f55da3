"""The renderer's figures for ``hybridshop bench bi``: whole-dashboard render and export time.

``measure(warehouse, project, now)`` (called by ``bench/bi.py`` on its 1,000,000-order
warehouse) returns, per dashboard:

- ``dashboard_ms``: p50 of a cold ``GET /dashboards/<name>`` on the real server over loopback
  — compile every element, check the join facts, run every tile on DuckDB, shape rows, build
  the Vega-Lite specs, render the page (its first data inline). The page cache is off and
  the query-result cache and join facts are cleared before each run, so every run does all
  of it, on the warehouse file held open as ``hybridshop up`` holds the replicator's read
  copy. ``dashboard_new_copy_ms``: the same right after the file is opened anew (the first
  page on a newly published copy: DuckDB's buffers empty). ``dashboard_warm_ms``: the same page again
  on the unchanged warehouse (query results cached by warehouse version; clock-reading
  queries such as freshness still run). ``export_warm_ms`` likewise for the export.
  Baseline in the same run: ``dashboard_queries_ms``, the p50 of running the same compiled
  DuckDB SQL of every tile back to back (with the join facts they assume checked anew, as
  the cold page checks them) and nothing else; ``dashboard_ratio_vs_queries``.
- ``export_ms``: p50 of a whole export — the tiles' queries, the self-contained HTML and the
  PNG (after one warm-up export, which pays vl-convert's start); ``export_png_ms`` the PNG
  part; baseline ``export_charts_ms``: vl-convert alone rendering the same chart specs at the
  same sizes; ``export_ratio_vs_charts``.
Target: dashboard < 500 ms, export < 5 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from hybridshop.analytics.render.export import export_dashboard
from hybridshop.analytics.render.png import HEAD, PAD, grid_box, render_chart
from hybridshop.analytics.render.server import make_dashboard_server
from hybridshop.bench.stats import percentile


def _p50(values: list[float]) -> float:
    return round(percentile(values, 50), 1)


def measure(
    warehouse: Path,
    project: Any,
    now: Any = None,
    *,
    runs: int = 5,
    export_runs: int = 2,
    scale: float = 2.0,
    only: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    from hybridshop.analytics.lookml import JoinFacts, compile_element, run_query

    server = make_dashboard_server(
        warehouse,
        "127.0.0.1",
        0,
        hold_open=True,  # as `hybridshop up` holds the replicator's read copy open
        load_project=lambda _dir: project,
        cache_ttl_s=0.0,
        min_refresh_s=0.0,
        now=now,
    ).start()
    service = server.service
    figures: dict[str, dict[str, Any]] = {}
    try:
        session = requests.Session()
        for dash in service.dashboards():
            if only is not None and dash.name not in only:
                continue
            url = f"{server.url}/dashboards/{dash.name}"
            page, queries = [], []
            queries_sql = [
                compile_element(project, dash.name, el.name, now=now)
                for el in dash.elements
                if el.type != "text"
            ]
            warm: list[float] = []
            new_copy: list[float] = []
            for i in range(runs + 1 if runs else 1):  # the first is a warm-up
                # the first page on a newly published copy: the file opened anew (DuckDB's
                # buffers empty, the OS page cache warm), every query and fact run
                service.warehouse.close()
                service.clear_results()
                t = time.perf_counter()
                session.get(url, timeout=60).raise_for_status()
                if i or not runs:
                    new_copy.append((time.perf_counter() - t) * 1000)
                service.clear_results()  # cold: every query runs
                t = time.perf_counter()
                resp = session.get(url, timeout=60)
                took = (time.perf_counter() - t) * 1000
                resp.raise_for_status()
                with service.warehouse.cursor() as cur:
                    t = time.perf_counter()
                    facts = JoinFacts()  # checked anew, as the cold page does
                    for compiled in queries_sql:
                        if compiled.ok:
                            run_query(compiled, cur, facts)
                    q = (time.perf_counter() - t) * 1000
                if i or not runs:
                    page.append(took)
                    queries.append(q)
                # warm: the same page again, the warehouse unchanged (cached query results)
                t = time.perf_counter()
                session.get(url, timeout=60).raise_for_status()
                if i or not runs:
                    warm.append((time.perf_counter() - t) * 1000)
            exports, charts, pngs, warm_exports = [], [], [], []
            data = service.data(dash.name).to_dict()
            with tempfile.TemporaryDirectory(prefix="hybridshop-export-") as tmp:
                for i in range(export_runs + 1 if export_runs else 1):
                    service.clear_results()
                    result = export_dashboard(service, dash.name, Path(tmp), scale=scale)
                    warm_result = export_dashboard(service, dash.name, Path(tmp), scale=scale)
                    t = time.perf_counter()
                    for tile in data["tiles"]:
                        if tile["kind"] == "chart" and tile["rows"] and not tile["errors"]:
                            x0, y0, x1, y1 = grid_box(tile["layout"], 0)
                            render_chart(
                                tile["spec"], x1 - x0 - 2 * PAD, y1 - y0 - HEAD - PAD, scale
                            )
                    chart_ms = (time.perf_counter() - t) * 1000
                    if i or not export_runs:
                        exports.append(result.total_ms)
                        warm_exports.append(warm_result.total_ms)
                        pngs.append(result.png_ms)
                        charts.append(chart_ms)
            figures[dash.name] = {
                "dashboard_ms": _p50(page),
                "dashboard_max_ms": round(max(page), 1),
                "dashboard_warm_ms": _p50(warm),
                "dashboard_new_copy_ms": _p50(new_copy),
                "dashboard_queries_ms": _p50(queries),
                "dashboard_ratio_vs_queries": round(_p50(page) / max(_p50(queries), 1e-6), 2),
                "export_ms": _p50(exports),
                "export_warm_ms": _p50(warm_exports),
                "export_png_ms": _p50(pngs),
                "export_charts_ms": _p50(charts),
                "export_ratio_vs_charts": round(_p50(exports) / max(_p50(charts), 1e-6), 2),
                "page_bytes": len(resp.content),
            }
    finally:
        server.stop()
    return figures
