"""``hybridshop bench <area>``: benchmarks that write bench-results/<area>.json.

Every figure is reported as a ratio against a baseline measured in the same run (pgbench,
pg_recvlogical, COPY), because these machines are shared and absolute times are noisy.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Measure an area against a same-run baseline; writes bench-results/<area>.json.",
    no_args_is_help=True,
)

RESULTS_DIR = Path("bench-results")


@app.command("api")
def bench_api(
    clients: list[int] = typer.Option([8, 32], "--clients", "-c", help="Client counts to measure."),
    seconds: float = typer.Option(
        10.0, "--seconds", "-s", help="Duration of each measurement (over all its rounds)."
    ),
    rounds: int = typer.Option(
        5,
        "--rounds",
        min=1,
        help="Alternations of gateway and pgbench per client count; the ratio is their median.",
    ),
    attack_seconds: float = typer.Option(
        15.0, "--attack-seconds", help="Duration of the slow-reader + pipelining attack phase."
    ),
    out: Path = typer.Option(
        RESULTS_DIR / "api.json", "--out", help="Where to write the JSON results."
    ),
) -> None:
    """Purchases/s and p50/p99 through the local gateway vs pgbench running the same
    transaction; then probe latency and gateway memory under slow-reader attacks."""
    from hybridshop.bench.api import run_api_bench

    run_api_bench(
        clients=clients, seconds=seconds, out=out, attack_seconds=attack_seconds, rounds=rounds
    )


@app.command("web")
def bench_web(
    products: int = typer.Option(1000, "--products", help="Catalog size (added through the API)."),
    requests_n: int = typer.Option(300, "--requests", "-n", help="Measured requests of each kind."),
    out: Path = typer.Option(
        RESULTS_DIR / "web.json", "--out", help="Where to write the JSON results."
    ),
) -> None:
    """Catalog page p50/p99 vs the API call it makes (same run); ratio target < 1.3."""
    import json

    from hybridshop.bench.web import run_web_bench

    result = run_web_bench(products=products, requests_n=requests_n, out=out)
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"written to {out}")


@app.command("cdc")
def bench_cdc(
    changes: int = typer.Option(200_000, "--changes", help="Changes drained in (a)."),
    rate: int = typer.Option(1000, "--rate", help="Steady changes/s for the lag measurement (b)."),
    seconds: float = typer.Option(10.0, "--seconds", help="Duration of the lag measurement."),
    rows: int = typer.Option(1_000_000, "--rows", help="Rows backfilled in (c)."),
    large_txn_rows: int = typer.Option(
        500_000, "--large-txn-rows", help="Rows of the one large transaction in (d)."
    ),
    out: Path = typer.Option(
        RESULTS_DIR / "cdc.json", "--out", help="Where to write the JSON results."
    ),
    only: str | None = typer.Option(
        None,
        "--only",
        help="Run one measure (drain, lag, backfill, large_txn); merged into --out.",
    ),
) -> None:
    """Local Datastream: drain vs pg_recvlogical, lag at 1,000 changes/s, backfill vs COPY,
    one large transaction (replicator peak RSS, catch-up vs pg_recvlogical)."""
    from hybridshop.bench.cdc import SECTIONS, markdown, run_cdc_bench

    if only is not None and only not in SECTIONS:
        raise typer.BadParameter(f"must be one of {', '.join(SECTIONS)}", param_hint="--only")
    result = run_cdc_bench(
        changes=changes,
        rate=rate,
        seconds=seconds,
        rows=rows,
        out=out,
        only=only,
        large_txn_rows=large_txn_rows,
    )
    typer.echo(markdown(result))
    typer.echo(f"written to {out}")


@app.command("simulate")
def bench_simulate(
    rate: float = typer.Option(1000.0, "--rate", help="Asked requests/s of the live measure."),
    seconds: float = typer.Option(15.0, "--seconds", "-s", help="Duration of the live run."),
    concurrency: int = typer.Option(16, "--concurrency", help="Simulator workers."),
    days: int = typer.Option(365, "--backfill-days", help="Days of history in (b)."),
    rounds: int = typer.Option(3, "--rounds", help="History rounds (median)."),
    out: Path = typer.Option(
        RESULTS_DIR / "simulate.json", "--out", help="Where to write the JSON results."
    ),
    only: str | None = typer.Option(
        None, "--only", help="Run one measure (live or backfill); merged into --out."
    ),
) -> None:
    """Simulator purchases/s at --rate 1000 vs the gateway's ceiling for the same request mix;
    --backfill-days 365 rows/s vs COPY of the same rows."""
    from hybridshop.bench.simulate import markdown, run_simulate_bench

    if only is not None and only not in ("live", "backfill"):
        raise typer.BadParameter("must be live or backfill", param_hint="--only")
    result = run_simulate_bench(
        rate=rate,
        seconds=seconds,
        concurrency=concurrency,
        days=days,
        rounds=rounds,
        out=out,
        only=only,
    )
    typer.echo(markdown(result))
    typer.echo(f"written to {out}")


@app.command("bi")
def bench_bi(
    orders: int = typer.Option(1_000_000, "--orders", help="Orders in the synthetic warehouse."),
    runs: int = typer.Option(15, "--runs", "-n", help="Measured runs of each tile."),
    out: Path = typer.Option(RESULTS_DIR / "bi.json", "--out", help="Where to write the JSON."),
) -> None:
    """Dashboard tiles (LookML compiled to DuckDB) vs hand-written DuckDB SQL, same run."""
    from hybridshop.bench.bi import run_bi_bench, summary

    result = run_bi_bench(orders=orders, runs=runs, out=out, progress=typer.echo)
    typer.echo(summary(result))
    typer.echo(f"written to {out}")


def _areas(values: list[str], option: str) -> list[str]:
    from hybridshop.bench.report import AREA_ORDER

    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in AREA_ORDER]
    if unknown:
        raise typer.BadParameter(
            f"unknown area {', '.join(unknown)}; choose from {', '.join(AREA_ORDER)}",
            param_hint=option,
        )
    return names


@app.command("all")
def bench_all(
    only: list[str] = typer.Option(
        [], "--only", help="Run only these areas (repeat, or comma-separate: api,cdc)."
    ),
    skip: list[str] = typer.Option([], "--skip", help="Leave these areas out."),
    quick: bool = typer.Option(
        False, "--quick", help="Each area's smallest sensible sizes: a fast check, not a benchmark."
    ),
    area_args: list[str] = typer.Option(
        [],
        "--area-args",
        metavar="AREA=OPTIONS",
        help='Extra options for one area, e.g. --area-args "cdc=--rows 200000".',
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Minutes one area may take before it is stopped (and reported)."
    ),
    budget: float | None = typer.Option(
        None,
        "--budget",
        help="Minutes for the whole run: an area still running is stopped, the rest are named "
        "as not run, and the report is written with what finished.",
    ),
    results_dir: Path = typer.Option(
        RESULTS_DIR, "--results-dir", help="Where each area writes <area>.json and its log."
    ),
    report: Path = typer.Option(
        Path("docs/benchmarks.md"), "--report", help="The Markdown report (plots go in <stem>/)."
    ),
    readme: Path | None = typer.Option(
        None,
        "--update-readme",
        help="Also rewrite the headline table between the bench-all markers of this README.",
    ),
    report_only: bool = typer.Option(
        False, "--report-only", help="Run nothing: regenerate the report from --results-dir."
    ),
) -> None:
    """Run every benchmark (api, web, cdc, bi, simulate), each in its own process so one that
    fails is reported and the rest still run; then write docs/benchmarks.md with every
    figure, its same-run baseline, its target and verdict, the machine and its load, and
    PNG plots. Exits 1 if any area did not finish."""
    import shlex

    from hybridshop.bench.report import AREA_ORDER, run_all, write_report

    chosen = _areas(only, "--only") or list(AREA_ORDER)
    skipped = set(_areas(skip, "--skip"))
    areas = [a for a in AREA_ORDER if a in chosen and a not in skipped]
    extra: dict[str, list[str]] = {}
    for item in area_args:
        name, sep, options = item.partition("=")
        _areas([name], "--area-args")
        if not sep:
            raise typer.BadParameter("write AREA=OPTIONS", param_hint="--area-args")
        extra.setdefault(name.strip(), []).extend(shlex.split(options))
    if not areas and not report_only:
        raise typer.BadParameter("no area left to run", param_hint="--only/--skip")
    manifest = None
    if not report_only:
        manifest = run_all(
            areas,
            results_dir,
            quick=quick,
            extra=extra,
            timeout_s=timeout * 60 if timeout else None,
            budget_s=budget * 60 if budget else None,
            echo=typer.echo,
        )
    path = write_report(results_dir, report, manifest, readme=readme)
    typer.echo(f"report written to {path} (plots in {path.with_suffix('')}/)")
    if manifest is not None:
        failed = [a for a, r in manifest["areas"].items() if r["status"] != "ok"]
        if failed:
            typer.echo(f"not finished: {', '.join(failed)} (see the report)", err=True)
            raise typer.Exit(1)
