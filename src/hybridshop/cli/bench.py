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
    seconds: float = typer.Option(10.0, "--seconds", "-s", help="Duration of each measurement."),
    out: Path = typer.Option(
        RESULTS_DIR / "api.json", "--out", help="Where to write the JSON results."
    ),
) -> None:
    """Purchases/s and p50/p99 through the local gateway vs pgbench running the same transaction."""
    from hybridshop.bench.api import run_api_bench

    run_api_bench(clients=clients, seconds=seconds, out=out)
