"""``hybridshop bench all`` and its report.

The fixtures in ``fixtures/report/`` are the JSON of a real ``hybridshop bench <area>`` run
of every area (small sizes, on the shared machine). The expected verdicts are computed here
from those numbers and their declared targets, not copied from the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hybridshop.bench.report import (
    AREA_ORDER,
    accepted_options,
    area_command,
    machine,
    parse_target,
    readme_block,
    update_readme,
    write_report,
)

FIXTURES = Path(__file__).parent / "fixtures" / "report"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load(area: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{area}.json").read_text())


def _manifest(areas: dict[str, str]) -> dict[str, Any]:
    return {
        "started_at": "2026-12-01T22:00:00Z",
        "finished_at": "2026-12-01T22:10:00Z",
        "quick": True,
        "machine": machine(),
        "load_before": [3.5, 4.0, 4.5],
        "load_samples": [[0.0, 3.5], [300.0, 6.0], [600.0, 4.0]],
        "load_during": {"min": 3.5, "mean": 4.5, "max": 6.0, "samples": 3},
        "areas": {
            name: {
                "status": status,
                "command": [sys.executable, "-m", "hybridshop.cli.main", "bench", name],
                "returncode": 0 if status == "ok" else 1,
                "seconds": 100.0,
                "started_s": 100.0 * i,
                "load": {"min": 3.5, "mean": 4.5, "max": 6.0, "samples": 20},
                "log_tail": [] if status == "ok" else ["Traceback ...", "RuntimeError: boom"],
                "reason": "" if status == "ok" else "exit code 1",
            }
            for i, (name, status) in enumerate(areas.items())
        },
    }


def _results(tmp_path: Path, edit: dict[str, Any] | None = None) -> Path:
    results = tmp_path / "bench-results"
    results.mkdir()
    for area in AREA_ORDER:
        data = _load(area)
        for key, value in (edit or {}).get(area, {}).items():
            data[key] = value
        (results / f"{area}.json").write_text(json.dumps(data))
    return results


def _row(markdown: str, label: str) -> list[str]:
    """The cells of the first table row whose text contains ``label``."""
    for line in markdown.splitlines():
        if line.startswith("|") and label in line:
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no table row with {label!r}")


def _verdict(met: bool) -> str:
    return "✅ met" if met else "❌ not met"


def _section(markdown: str, area: str) -> str:
    start = markdown.index(f"\n## {area}: ")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end > 0 else None]


def test_report_from_a_recorded_run(tmp_path: Path) -> None:
    results = _results(tmp_path)
    doc = tmp_path / "docs" / "benchmarks.md"
    write_report(results, doc, _manifest(dict.fromkeys(AREA_ORDER, "ok")))
    md = doc.read_text()

    api, web, cdc, bi, sim = (_load(a) for a in AREA_ORDER)
    at8 = api["clients"]["8"]
    row = _row(_section(md, "api"), "purchases/s, 8 clients")
    assert row[3] == f"{at8['ratio']:.2f}"
    assert f"{at8['pgbench_tps']:,.0f}" in row[2]
    assert row[-1] == _verdict(at8["ratio"] >= api["targets"]["ratio_at_8_clients"])
    for name, ms in api["handler_import_ms"].items():
        assert _row(md, f"cold import of {name}")[-1] == _verdict(
            ms < api["targets"]["handler_import_ms"]
        )

    row = _row(_section(md, "web"), "catalog page p50 (gunicorn")
    assert row[3] == f"{web['ratio']:.2f}"
    assert row[-1] == _verdict(web["ratio"] < web["target_ratio"])

    cdc_md = _section(md, "cdc")
    drain_target = float(cdc["targets"]["drain_ratio"].split()[1])
    assert _row(cdc_md, "drain ")[-1] == _verdict(cdc["drain_ratio"] >= drain_target)
    assert _row(cdc_md, "lag commit")[-1] == _verdict(cdc["lag_p99_ms"] < 500)
    backfill_target = float(cdc["targets"]["backfill_ratio"].split()[1])
    assert _row(cdc_md, "backfill ")[-1] == _verdict(cdc["backfill_ratio"] >= backfill_target)

    for name, dash in bi["dashboards"].items():
        row = _row(_section(md, "bi"), f"{name} dashboard: all tiles")
        assert row[3] == f"{dash['ratio_vs_handwritten']:.2f}"
        assert row[-1] == _verdict(
            dash["ratio_vs_handwritten"] <= bi["targets"]["ratio_vs_handwritten"]
        )
        assert _row(_section(md, "bi"), f"{name}: slowest tile")[-1] == _verdict(
            dash["p50_tile_ms"] < bi["targets"]["p50_tile_ms"]
        )

    sim_md = _section(md, "simulate")
    live, hist = sim["live"], sim["backfill"]
    assert _row(sim_md, "simulator purchases/s")[-1] == _verdict(
        live["ratio"] >= live["target_ratio"]
    )
    assert _row(sim_md, "--backfill-days")[-1] == _verdict(hist["ratio"] >= hist["target_ratio"])

    # the summary repeats every headline figure; machine and load are described
    summary = md[md.index("## Summary") : md.index("## Machine")]
    assert summary.count("| api |") == 1 and summary.count("| bi |") == len(bi["dashboards"])
    assert "Shared, noisy machine" in md and "3.5 / 4.0 / 4.5" in md
    for label in ("CPU", "cores", "memory (GiB)", "kernel", "Python", "PostgreSQL", "DuckDB"):
        assert f"| {label} |" in md
    assert "Areas missing" not in md

    # every image the page shows is a real PNG of a readable size, and every plot is shown
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", md)
    names = {Path(i).stem for i in images}
    assert names == {"summary", "load", "api-throughput", "api-latency", "cdc-lag", "bi-tiles"}
    for rel in images:
        png = doc.parent / rel
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(png) as img:
            img.verify()
        with Image.open(png) as img:
            assert img.width >= 600 and img.height >= 200
    assert sorted(p.name for p in (doc.parent / "benchmarks").iterdir()) == sorted(
        f"{n}.png" for n in names
    )


def test_verdicts_follow_the_numbers_and_the_declared_targets(tmp_path: Path) -> None:
    api, cdc = _load("api"), _load("cdc")
    clients = {**api["clients"], "8": {**api["clients"]["8"], "ratio": 0.75}}
    results = _results(
        tmp_path,
        {
            "api": {"clients": clients},
            "cdc": {"targets": {**cdc["targets"], "drain_ratio": f">= {cdc['drain_ratio'] + 1}"}},
        },
    )
    doc = tmp_path / "benchmarks.md"
    write_report(results, doc, _manifest(dict.fromkeys(AREA_ORDER, "ok")))
    md = doc.read_text()
    row = _row(_section(md, "api"), "purchases/s, 8 clients")
    assert row[-1] == "✅ met" and row[3] == "0.75"
    row = _row(_section(md, "cdc"), "drain ")
    assert row[-1] == "❌ not met" and f"≥ {cdc['drain_ratio'] + 1:g}" in row[4]


def test_new_fields_and_targets_appear_without_code_changes(tmp_path: Path) -> None:
    cdc = _load("cdc")
    results = _results(
        tmp_path,
        {
            "cdc": {
                "slot_wal_retained_mb": 12.5,
                "targets": {**cdc["targets"], "slot_wal_retained_mb": "< 64"},
            }
        },
    )
    doc = tmp_path / "benchmarks.md"
    write_report(results, doc, _manifest(dict.fromkeys(AREA_ORDER, "ok")))
    section = _section(doc.read_text(), "cdc")
    assert "| `slot_wal_retained_mb` | 12.5 |" in section
    assert "`slot_wal_retained_mb` < 64" in section  # declared, not mapped to a headline
    assert "lag_series" not in section.split("All recorded figures")[1]


def test_a_failed_area_is_named_and_its_old_json_not_used(tmp_path: Path) -> None:
    results = _results(tmp_path)
    doc = tmp_path / "benchmarks.md"
    statuses = dict.fromkeys(AREA_ORDER, "ok") | {"cdc": "failed", "simulate": "not run"}
    write_report(results, doc, _manifest(statuses))
    md = doc.read_text()
    assert "**Areas missing from this run:** `cdc` (failed: exit code 1); `simulate` (not run" in md
    cdc = _section(md, "cdc")
    assert "Not measured in this run: failed" in cdc
    assert "Its last message: `RuntimeError: boom`" in cdc
    assert "drain " not in cdc and "cdc-lag.png" not in md


def test_readme_block_quotes_the_headline(tmp_path: Path) -> None:
    results = _results(tmp_path)
    manifest = _manifest(dict.fromkeys(AREA_ORDER, "ok"))
    block = readme_block(manifest, {a: _load(a) for a in AREA_ORDER}, "docs/benchmarks.md")
    web = _load("web")
    row = _row(block, "| web |")
    assert row[1] == "catalog page p50 (gunicorn, as on Cloud Run)"
    assert row[4] == f"{web['ratio']:.2f}" and row[-1] == _verdict(
        web["ratio"] < web["target_ratio"]
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Benchmarks\n\n<!-- bench-all:begin -->\nold\n<!-- bench-all:end -->\n\n## Next\n"
    )
    assert update_readme(readme, block)
    text = readme.read_text()
    assert "old" not in text and text.endswith("\n\n## Next\n") and "[docs/benchmarks.md]" in text
    assert results.exists()


def test_parse_target() -> None:
    assert parse_target(0.6, ">=") is not None and parse_target(0.6, ">=").met(0.6)  # type: ignore[union-attr]
    target = parse_target("< 400 (500,000 rows); 5,000,000 rows within 1024", "<=")
    assert target is not None and (target.op, target.value) == ("<", 400.0)
    assert target.met(399) and not target.met(400)
    assert parse_target(">= 0.5", "<").met(0.5)  # type: ignore[union-attr]
    assert parse_target("about fast", "<") is None and parse_target(None, "<") is None


@pytest.mark.parametrize("area", AREA_ORDER)
def test_quick_passes_only_options_the_area_accepts(area: str, tmp_path: Path) -> None:
    command = area_command(area, tmp_path / f"{area}.json", quick=True)
    assert command[3:5] == ["bench", area] and command[-2:] == [
        "--out",
        str(tmp_path / f"{area}.json"),
    ]
    options = [arg for arg in command[5:-2] if arg.startswith("--")]
    assert options, f"--quick passes no size to {area}"
    assert set(options) <= accepted_options(area)


@pytest.mark.slow
def test_bench_all_isolates_a_failing_area(tmp_path: Path) -> None:
    """A real run: cdc fails at once (bad option value), bi still runs after it."""
    results, doc = tmp_path / "results", tmp_path / "docs" / "benchmarks.md"
    results.mkdir()
    (results / "cdc.json").write_text('{"stale": true}')  # must not be reported as this run's
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [
            shutil.which("hybridshop") or "hybridshop",
            "bench", "all", "--only", "cdc,bi",
            "--area-args", "cdc=--only nonsense",
            "--area-args", "bi=--orders 3000 --runs 1",
            "--results-dir", str(results), "--report", str(doc),
        ],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "✗ cdc: failed" in proc.stdout and "✓ bi: ok" in proc.stdout
    manifest = json.loads((results / "run.json").read_text())
    assert manifest["areas"]["cdc"]["status"] == "failed"
    assert manifest["areas"]["cdc"]["returncode"] == 2
    assert manifest["areas"]["bi"]["status"] == "ok"
    assert json.loads((results / "cdc.previous.json").read_text()) == {"stale": True}
    assert not (results / "cdc.json").exists()
    md = doc.read_text()
    assert "**Areas missing from this run:** `cdc` (failed: exit code 2" in md
    assert "must be one of" in _section(md, "cdc")  # the area's own error message
    bi = json.loads((results / "bi.json").read_text())
    assert bi["orders"] == 3000
    assert _row(_section(md, "bi"), "sales dashboard: all tiles")[3] == (
        f"{bi['dashboards']['sales']['ratio_vs_handwritten']:.2f}"
    )
    assert (doc.parent / "benchmarks" / "bi-tiles.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.slow
def test_bench_all_stops_an_area_past_its_timeout(tmp_path: Path) -> None:
    """bi on 5,000,000 orders cannot finish in 3 s: it is stopped (SIGINT, then harder),
    reported as timed out, and the report is still written."""
    results, doc = tmp_path / "results", tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [
            shutil.which("hybridshop") or "hybridshop",
            "bench", "all", "--only", "bi", "--timeout", "0.05",
            "--area-args", "bi=--orders 5000000",
            "--results-dir", str(results), "--report", str(doc),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run = json.loads((results / "run.json").read_text())["areas"]["bi"]
    assert run["status"] == "timed out" and run["seconds"] < 120
    assert not (results / "bi.json").exists()
    assert "`bi` (timed out: stopped after the time allowed" in doc.read_text()
    assert _processes_with(str(results / "bi.json")) == [], "the stopped area left a process"


def _processes_with(argument: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if argument.encode() in cmdline.read_bytes().split(b"\0"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_memory_and_attack_figures_when_the_benches_record_them(tmp_path: Path) -> None:
    """The fields bench api (attack phase, gateway RSS) and bench cdc (large transaction)
    add, in the shape they write them: headline rows with their declared targets."""
    api, cdc = _load("api"), _load("cdc")
    attacks = {"probe_p50_ms": 3.2, "probe_max_ms": 140.0, "gateway_rss_before_mb": 60.0,
               "gateway_rss_peak_during_mb": 90.0}  # fmt: skip
    api_targets = {**api["targets"], "gateway_rss_peak_during_attacks_mb": 200,
                   "probe_ms_during_attacks": 100}  # fmt: skip
    large = {"large_txn_rows": 500000, "large_txn_peak_rss_mb": 450.0,
             "large_txn_rss_before_mb": 90.0, "large_txn_catch_up_s": 20.5,
             "large_txn_pg_recvlogical_s": 8.2, "large_txn_ratio": 0.4}  # fmt: skip
    cdc_targets = {**cdc["targets"], "large_txn_peak_rss_mb": "< 400 (500,000 rows)"}
    results = _results(
        tmp_path,
        {
            "api": {"attacks": attacks, "targets": api_targets},
            "cdc": {**large, "targets": cdc_targets},
        },
    )
    doc = tmp_path / "benchmarks.md"
    write_report(results, doc, _manifest(dict.fromkeys(AREA_ORDER, "ok")))
    md = doc.read_text()
    row = _row(_section(md, "api"), "gateway peak RSS during")
    assert row[0].startswith("**") and row[1] == "90 MB" and row[-1] == "✅ met"
    assert _row(_section(md, "api"), "probe latency during")[-1] == "❌ not met"
    row = _row(_section(md, "cdc"), "replicator peak RSS")
    assert row[4] == "value < 400 MB (500,000 rows)" and row[-1] == "❌ not met"
    assert _row(_section(md, "cdc"), "catch-up after")[3] == "0.40"
    assert "Targets this benchmark declares" not in md
