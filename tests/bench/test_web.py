"""``bench web`` on a tiny catalog: both shop servers answer the page through the bench's own
gateway (its identity tokens come from that gateway's issuer, not `hybridshop up`'s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridshop.bench.web import run_web_bench


@pytest.mark.slow
def test_bench_web_small(tmp_path: Path) -> None:
    out = tmp_path / "web.json"
    result = run_web_bench(products=30, requests_n=5, warmup=2, out=out)
    assert json.loads(out.read_text()) == result
    assert set(result["servers"]) == {"werkzeug", "gunicorn"}
    for row in result["servers"].values():
        assert row["page_p50_ms"] > 0 and row["api_p50_ms"] > 0 and row["ratio"] > 0
