"""``bench bi`` on a small warehouse: it runs, writes the named fields, and every compiled
tile gives the same numbers as its hand-written query (so the baseline stays honest)."""

from __future__ import annotations

import json
from pathlib import Path

from hybridshop.bench.bi import merge_figures, run_bi_bench


def test_bench_bi_small(tmp_path: Path) -> None:
    out = tmp_path / "bi.json"
    result = run_bi_bench(
        orders=3000, runs=1, out=out, progress=lambda _: None, extra=lambda *_: {}
    )
    assert result["mismatches"] == []
    data = json.loads(out.read_text())
    assert set(data["dashboards"]) == {"sales", "catalog", "pipeline_health"}
    for d in data["dashboards"].values():
        assert {"p50_tile_ms", "max_tile_ms", "ratio_vs_handwritten", "tiles"} <= set(d)
        assert d["max_tile_ms"] >= d["p50_tile_ms"] > 0
    assert len(data["dashboards"]["sales"]["tiles"]) == 8
    # the synthetic shop data: every order has its product, no product sells twice, so the
    # join facts hold and the joined tiles ran their cheaper SQL (same numbers: no mismatch)
    catalog, sales = data["dashboards"]["catalog"], data["dashboards"]["sales"]
    assert set(catalog["facts"].values()) == {True} and catalog["facts_ms"] > 0
    assert catalog["tiles"]["listed_vs_sold"]["assumed"]
    assert sales["tiles"]["top_products"]["assumed"] and not sales["tiles"]["revenue"]["assumed"]
    assert sales["ratio_tiles_only"] > 0
    merge_figures(out, {"sales": {"dashboard_ms": 12.5, "export_ms": 900.0}})
    sales = json.loads(out.read_text())["dashboards"]["sales"]
    assert sales["dashboard_ms"] == 12.5 and sales["p50_tile_ms"] > 0
