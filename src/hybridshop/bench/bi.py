"""``hybridshop bench bi``: every dashboard tile on 1,000,000 orders vs hand-written SQL.

The warehouse is synthetic but in Datastream's layout (``analytics.warehouse.generate``:
1,000,000 orders, 1,200,000 products over 180 days). Each tile is compiled from the LookML
as the dashboards compile it (default filters, ``now`` pinned to the end of the data so the
relative date ranges select it), then, alternating in the same run, the compiled DuckDB SQL
(``run_query``: execute, fetch, fill/pivot) and a hand-written minimal DuckDB query giving the
same numbers (checked) are each run ``runs`` times. The ratio is the compiler's overhead.

``bench-results/bi.json``, per dashboard:
- ``p50_tile_ms``: the p50 of its slowest tile (target < 50 ms for every tile);
- ``max_tile_ms``: the slowest single run of any of its tiles;
- ``ratio_vs_handwritten``: (sum of its tiles' p50s + ``facts_ms``) / sum of the
  hand-written p50s (target <= 1.5); per tile: ``tiles.<name>`` with p50/max of both,
  ``compile_ms`` (LookML → BigQuery → DuckDB SQL, once per filter change, not per refresh)
  and ``assumed`` (whether it ran its ``assumed_sql``: see ``lookml.compiler.JoinFact``);
- ``facts_ms``: p50 of checking all the ``JoinFact``s its tiles assume (every order has
  its product; no product has two orders), paid once per warehouse copy and counted in the
  ratio; ``facts``: each fact and whether it held. ``ratio_tiles_only`` leaves them out.
The renderer adds ``dashboard_ms`` and ``export_ms``: ``run_bi_bench`` calls
``hybridshop.analytics.render.bench.measure(warehouse, project, now)`` when that module
exists (it returns ``{dashboard: {field: value}}``), or call ``merge_figures`` afterwards.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hybridshop.bench.stats import percentile

NOW = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # the synthetic data ends here


def _bounds(expr: str) -> tuple[str, str]:
    from hybridshop.analytics.lookml.filters import date_interval

    iv = date_interval(expr, NOW)
    assert isinstance(iv, tuple) and iv[0] is not None and iv[1] is not None
    return iv[0].strftime("%Y-%m-%d %H:%M:%S"), iv[1].strftime("%Y-%m-%d %H:%M:%S")


def handwritten(dashboard: str, element: str, default_date: str) -> str | None:
    """The minimal DuckDB query a person would write for the tile (same numbers)."""
    lo, hi = _bounds(default_date) if default_date else ("", "")
    o_when = f"o.purchased_at >= TIMESTAMP '{lo}' AND o.purchased_at < TIMESTAMP '{hi}'"
    p_when = f"p.created_at >= TIMESTAMP '{lo}' AND p.created_at < TIMESTAMP '{hi}'"
    ms_lo = int(datetime.fromisoformat(lo).replace(tzinfo=UTC).timestamp() * 1000) if lo else 0
    ms_hi = int(datetime.fromisoformat(hi).replace(tzinfo=UTC).timestamp() * 1000) if hi else 0
    src = (
        f"datastream_metadata.source_timestamp >= {ms_lo} "
        f"AND datastream_metadata.source_timestamp < {ms_hi}"
    )
    po = "public_orders o JOIN public_products p ON p.id = o.product_id"
    pp = "public_products p LEFT JOIN public_orders o ON o.product_id = p.id"
    tiers = (
        "CASE WHEN p.price < 10 THEN 'Below 10' WHEN p.price < 25 THEN '10 to 24' "
        "WHEN p.price < 50 THEN '25 to 49' WHEN p.price < 100 THEN '50 to 99' "
        "WHEN p.price < 250 THEN '100 to 249' ELSE '250 or Above' END"
    )
    fresh = (
        "date_diff('second', max(epoch_ms(datastream_metadata.source_timestamp)), now()::TIMESTAMP)"
    )
    queries = {
        ("sales", "revenue"): f"SELECT sum(price) FROM public_orders o WHERE {o_when}",
        ("sales", "orders"): f"SELECT count(*) FROM public_orders o WHERE {o_when}",
        ("sales", "average_order_value"): f"SELECT avg(price) FROM public_orders o WHERE {o_when}",
        ("sales", "revenue_over_time"): (
            f"SELECT o.purchased_at::DATE, sum(price), count(*) FROM public_orders o "
            f"WHERE {o_when} GROUP BY 1 ORDER BY 1"
        ),
        ("sales", "revenue_by_category"): (
            f"SELECT p.category, sum(o.price) FROM {po} WHERE {o_when} GROUP BY 1 "
            "ORDER BY 2 DESC LIMIT 50"
        ),
        ("sales", "weekly_revenue_by_category"): (
            f"SELECT strftime(date_trunc('week', o.purchased_at), '%Y-%m-%d'), p.category, "
            f"sum(o.price) FROM {po} WHERE {o_when} GROUP BY 1, 2 ORDER BY 1"
        ),
        ("sales", "orders_by_hour"): (
            f"SELECT hour(o.purchased_at), count(*) FROM public_orders o WHERE {o_when} "
            "GROUP BY 1 ORDER BY 1"
        ),
        ("sales", "top_products"): (
            f"SELECT p.name, p.category, sum(o.price), count(*) FROM {po} WHERE {o_when} "
            "GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 10"
        ),
        ("catalog", "items_listed"): f"SELECT count(*) FROM public_products p WHERE {p_when}",
        ("catalog", "items_sold"): f"SELECT count(*) FROM {po} WHERE {p_when}",
        ("catalog", "sell_through_rate"): (
            f"SELECT count(o.id) / count(*) FROM {pp} WHERE {p_when}"
        ),
        ("catalog", "median_hours_to_sale"): (
            "SELECT quantile_disc(date_diff('second', p.created_at, o.purchased_at) / 3600.0, "
            f"0.5) FROM {po} WHERE {p_when}"
        ),
        ("catalog", "listed_vs_sold"): (
            f"SELECT p.category, count(*), count(o.id) FROM {pp} WHERE {p_when} GROUP BY 1 "
            "ORDER BY 2 DESC LIMIT 50"
        ),
        ("catalog", "new_listings"): (
            f"SELECT p.created_at::DATE, count(*) FROM public_products p WHERE {p_when} "
            "GROUP BY 1 ORDER BY 1"
        ),
        ("catalog", "price_distribution"): (
            f"SELECT {tiers}, p.category, count(*) FROM public_products p WHERE {p_when} "
            "GROUP BY 1, 2"
        ),
        ("catalog", "price_vs_time_to_sale"): (
            "SELECT p.category, avg(o.price), quantile_disc(date_diff('second', p.created_at, "
            f"o.purchased_at) / 3600.0, 0.5) FROM {po} WHERE {p_when} GROUP BY 1 "
            "ORDER BY 2 DESC LIMIT 50"
        ),
        ("catalog", "unsold_listings"): (
            f"SELECT p.name, p.category, p.price, p.created_at::DATE FROM {pp} "
            f"WHERE o.id IS NULL AND {p_when} ORDER BY p.created_at::DATE, p.name LIMIT 20"
        ),
        ("pipeline_health", "orders_freshness"): f"SELECT {fresh} FROM public_orders",
        ("pipeline_health", "products_freshness"): f"SELECT {fresh} FROM public_products",
        ("pipeline_health", "orders_rows"): "SELECT count(*) FROM public_orders",
        ("pipeline_health", "products_rows"): "SELECT count(*) FROM public_products",
        ("pipeline_health", "order_changes_per_minute"): (
            "SELECT strftime(epoch_ms(datastream_metadata.source_timestamp), '%Y-%m-%d %H:%M'), "
            f"count(*) FROM public_orders WHERE {src} GROUP BY 1 ORDER BY 1"
        ),
        ("pipeline_health", "product_changes_per_minute"): (
            "SELECT strftime(epoch_ms(datastream_metadata.source_timestamp), '%Y-%m-%d %H:%M'), "
            f"count(*) FROM public_products WHERE {src} GROUP BY 1 ORDER BY 1"
        ),
        ("pipeline_health", "latest_changes"): (
            "SELECT category, count(*), max(epoch_ms(datastream_metadata.source_timestamp)) "
            "FROM public_products GROUP BY 1 ORDER BY 1"
        ),
    }
    return queries.get((dashboard, element))


def _norm(value: Any) -> Any:
    if isinstance(value, Decimal | float):
        return round(float(value), 4)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _same(
    compiled_rows: list[tuple[Any, ...]], hand_rows: list[tuple[Any, ...]], approx_seconds: bool
) -> bool:
    a = sorted((tuple(_norm(v) for v in r) for r in compiled_rows), key=repr)
    b = sorted((tuple(_norm(v) for v in r) for r in hand_rows), key=repr)
    if approx_seconds:  # freshness: "now" differs by the time between the two queries
        return len(a) == len(b) == 1 and abs(a[0][0] - b[0][0]) <= 5
    return a == b


def merge_figures(out: Path, figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge ``{dashboard: {field: value}}`` (e.g. dashboard_ms, export_ms) into bi.json."""
    data = json.loads(out.read_text()) if out.exists() else {"dashboards": {}}
    for name, values in figures.items():
        data.setdefault("dashboards", {}).setdefault(name, {}).update(values)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    return data


def run_bi_bench(
    orders: int = 1_000_000,
    runs: int = 15,
    out: Path = Path("bench-results/bi.json"),
    progress: Callable[[str], None] = print,
    extra: Callable[[Path, Any, datetime], dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    import duckdb

    from hybridshop.analytics.lookml import JoinFacts, compile_element, load_project, run_query
    from hybridshop.analytics.warehouse import generate

    project = load_project()
    with tempfile.TemporaryDirectory(prefix="hybridshop-bench-bi-") as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        progress(f"generating {orders:,} orders in the Datastream layout ...")
        t0 = time.perf_counter()
        con = duckdb.connect(str(path))
        generate(con, orders)
        con.close()
        progress(f"  {time.perf_counter() - t0:.1f} s")
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        # the settings run_query applies, for the hand-written queries too (same connection)
        con.execute("SET preserve_insertion_order = false")
        result: dict[str, Any] = {
            "area": "bi",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other "
            "engineers' work: compare ratios, not absolute times",
            "orders": orders,
            "runs_per_tile": runs,
            "targets": {
                "p50_tile_ms": 50,
                "ratio_vs_handwritten": 1.5,
                "dashboard_ms": 500,
                "export_ms": 5000,
            },
            "dashboards": {},
            "mismatches": [],
        }
        for dash in project.dashboards.values():
            default_date = next((f.default_value for f in dash.filters if f.name == "date"), "")
            tiles: dict[str, Any] = {}
            # the facts this dashboard's tiles assume, all checked as on a new warehouse copy,
            # ``runs`` times after a warm-up like the tiles (facts_ms: the p50); the tile runs
            # below then use the answers
            compiled_tiles = {}
            compile_times: dict[str, float] = {}
            for el in dash.elements:
                if el.type == "text":
                    continue
                c0 = time.perf_counter()
                compiled_tiles[el.name] = compile_element(project, dash.name, el.name, now=NOW)
                compile_times[el.name] = (time.perf_counter() - c0) * 1000
            fact_runs: list[float] = []
            for i in range(runs + 1):  # the first is a warm-up, as for the tiles
                checks = JoinFacts()
                for compiled in compiled_tiles.values():
                    for fact in compiled.assumes:
                        checks.holds(con, fact)
                if i:
                    fact_runs.append(checks.ms)
                facts = checks
            facts_ms = percentile(fact_runs, 50)
            for el in dash.elements:
                if el.type == "text":
                    continue
                compiled = compiled_tiles[el.name]
                compile_ms = compile_times[el.name]
                if not compiled.ok:
                    raise RuntimeError(f"{dash.name}/{el.name}: {compiled.errors}")
                listens_date = "date" in el.listen
                hand = handwritten(dash.name, el.name, default_date if listens_date else "")
                if hand is None:
                    raise RuntimeError(f"no hand-written query for {dash.name}/{el.name}")
                ours, theirs = [], []
                ours_rows: list[tuple[Any, ...]] = []
                hand_rows: list[tuple[Any, ...]] = []
                for i in range(runs + 1):  # the first of each is a warm-up
                    s = time.perf_counter()
                    res = run_query(compiled, con, facts)
                    a = (time.perf_counter() - s) * 1000
                    s = time.perf_counter()
                    hand_rows = con.execute(hand).fetchall()
                    b = (time.perf_counter() - s) * 1000
                    if i:
                        ours.append(a)
                        theirs.append(b)
                measures = [f.name for f in compiled.fields if f.is_measure]
                ours_rows = [
                    tuple(r[f.name] for f in compiled.fields)
                    for r in res.rows
                    # filled dates are not in the SQL result
                    if not measures or any(r[m] is not None for m in measures)
                ]
                if not _same(ours_rows, hand_rows, el.name.endswith("freshness")):
                    result["mismatches"].append(f"{dash.name}/{el.name}")
                tiles[el.name] = {
                    "p50_ms": round(percentile(ours, 50), 2),
                    "max_ms": round(max(ours), 2),
                    "handwritten_p50_ms": round(percentile(theirs, 50), 2),
                    "handwritten_max_ms": round(max(theirs), 2),
                    "ratio": round(percentile(ours, 50) / max(percentile(theirs, 50), 1e-6), 2),
                    "compile_ms": round(compile_ms, 1),
                    "rows": len(res.rows),
                    "assumed": res.sql == compiled.assumed_sql,
                }
                progress(
                    f"  {dash.name}/{el.name}: p50 {tiles[el.name]['p50_ms']} ms "
                    f"(hand-written {tiles[el.name]['handwritten_p50_ms']} ms, ratio "
                    f"{tiles[el.name]['ratio']})"
                )
            total_ours = sum(t["p50_ms"] for t in tiles.values())
            total_hand = sum(t["handwritten_p50_ms"] for t in tiles.values())
            result["dashboards"][dash.name] = {
                "p50_tile_ms": max(t["p50_ms"] for t in tiles.values()),
                "max_tile_ms": max(t["max_ms"] for t in tiles.values()),
                "ratio_vs_handwritten": round((total_ours + facts_ms) / max(total_hand, 1e-6), 2),
                "ratio_tiles_only": round(total_ours / max(total_hand, 1e-6), 2),
                "facts_ms": round(facts_ms, 1),
                "facts": {
                    f"{f.kind}: {f.describe()}": held
                    for c in compiled_tiles.values()
                    for f in c.assumes
                    for sql, held in facts.known().items()
                    if sql == f.sql
                },
                "tiles": tiles,
            }
            progress(f"  {dash.name}: join facts checked in {facts_ms:.1f} ms")
        con.close()
        figures: dict[str, dict[str, Any]] = {}
        if extra is None:
            try:
                from hybridshop.analytics.render import bench as render_bench

                extra = render_bench.measure
            except (ImportError, AttributeError):
                extra = None
        if extra is not None:
            progress("measuring dashboard render and export ...")
            figures = extra(path, project, NOW)
    for name, values in figures.items():
        result["dashboards"].setdefault(name, {}).update(values)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def summary(result: dict[str, Any]) -> str:
    """A short table of the per-dashboard figures."""
    lines = [
        f"{result['orders']:,} orders, {result['runs_per_tile']} runs per tile "
        "(shared machine: read the ratios)",
        f"{'dashboard':<16} {'p50 tile ms':>12} {'max tile ms':>12} {'ratio':>6}"
        f" {'dashboard ms':>13} {'export ms':>10}",
    ]
    for name, d in result["dashboards"].items():
        lines.append(
            f"{name:<16} {d.get('p50_tile_ms', float('nan')):>12.1f} "
            f"{d.get('max_tile_ms', float('nan')):>12.1f} "
            f"{d.get('ratio_vs_handwritten', float('nan')):>6.2f} "
            f"{d.get('dashboard_ms', float('nan')):>13.1f} {d.get('export_ms', float('nan')):>10.1f}"
        )
    if result.get("mismatches"):
        lines.append(
            "DIFFERENT NUMBERS from the hand-written query: " + ", ".join(result["mismatches"])
        )
    return "\n".join(lines)
