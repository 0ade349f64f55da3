"""The renderer's figures for ``hybridshop bench bi`` on a small warehouse."""

from __future__ import annotations

from pathlib import Path

from hybridshop.analytics.lookml import load_project
from hybridshop.analytics.render.bench import measure

from .render_support import demo_shop, write_warehouse


def test_measure_gives_dashboard_and_export_figures(tmp_path: Path):
    warehouse = tmp_path / "warehouse.read.duckdb"
    write_warehouse(warehouse, demo_shop())
    figures = measure(warehouse, load_project(), runs=1, export_runs=0, scale=1.0, only=["sales"])
    assert set(figures) == {"sales"}
    for name, f in figures.items():
        assert f["dashboard_ms"] > 0 and f["dashboard_queries_ms"] > 0, name
        assert f["export_ms"] >= f["export_png_ms"] > 0, name
        assert f["export_ratio_vs_charts"] > 0 and f["page_bytes"] > 1000, name
