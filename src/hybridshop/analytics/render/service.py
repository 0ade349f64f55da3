"""The dashboards as data: the Looker project, the warehouse, and each dashboard's tiles.

``DashboardService`` is what the HTTP views, the export and the benchmark call. It reloads
the Looker project when a file under it changes (dashboards as code: edit, reload the page),
and caches a dashboard's tiles per (filters, warehouse version) for a few seconds, so many
open pages polling the same dashboard run its queries once per change.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridshop.analytics.render.tiles import Tile, build_tile, parse_refresh
from hybridshop.analytics.render.warehouse import WarehouseFile, WarehouseUnavailable

log = logging.getLogger("hybridshop.dashboards")
MAX_CACHED_RESULTS = 512  # query results kept for the current warehouse version
CACHE_TTL_S = 10.0  # relative date filters ("7 days") move with the clock: recompute anyway
SUGGESTIONS_TTL_S = 60.0
MIN_REFRESH_S = 1.0  # recompute a view at most this often while the warehouse keeps changing


class UnknownDashboard(LookupError):
    pass


class UnknownElement(LookupError):
    pass


@dataclass
class DashboardData:
    """One dashboard with its tiles, ready for the page, the HTML export or the PNG."""

    dashboard: Any
    filters: dict[str, str]  # the values in force (URL value, else the default)
    tiles: list[Tile]
    warehouse: dict[str, Any]
    generated_at_ms: int
    took_ms: float
    as_of_ms: int | None = None  # relative date filters pinned to this time (reports)
    suggestions: dict[str, list[str]] | None = None  # filter name -> values of its field

    def to_dict(self) -> dict[str, Any]:
        meta = dashboard_meta(self.dashboard, self.filters)
        for f in meta["filters"]:
            f["suggestions"] = (self.suggestions or {}).get(f["name"], [])
        return {
            "as_of_ms": self.as_of_ms,
            "dashboard": meta,
            "tiles": [t.to_dict() for t in self.tiles],
            "warehouse": self.warehouse,
            "generated_at_ms": self.generated_at_ms,
            "took_ms": round(self.took_ms, 1),
        }


def dashboard_meta(dashboard: Any, values: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": dashboard.name,
        "title": dashboard.title or dashboard.name,
        "description": dashboard.description or "",
        "refresh_s": parse_refresh(dashboard.refresh),
        "filters": [
            {
                "name": f.name,
                "title": f.title or f.name,
                "type": f.type,
                "field": f.field,
                "default_value": f.default_value or "",
                "value": values.get(f.name, f.default_value or ""),
                "ui": (f.ui_config or {}).get("type"),
            }
            for f in dashboard.filters
        ],
    }


def _project_stamp(root: Path) -> tuple[int, int]:
    """(newest mtime, file count) of the project's LookML files: changes when one is edited."""
    newest, count = 0, 0
    for p in root.rglob("*"):
        if p.suffix in {".lkml", ".lookml"} or p.name.endswith(".dashboard.lookml"):
            try:
                newest = max(newest, p.stat().st_mtime_ns)
            except OSError:
                continue
            count += 1
    return newest, count


class DashboardService:
    def __init__(
        self,
        warehouse: WarehouseFile,
        project_dir: Path | None = None,
        *,
        load_project: Callable[[Path | None], Any] | None = None,
        compile_element: Callable[..., Any] | None = None,
        run_query: Callable[[Any, Any], Any] | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
        min_refresh_s: float = MIN_REFRESH_S,
        now: Any = None,
    ) -> None:
        if load_project is None:
            from hybridshop.analytics.lookml import load_project as _load

            load_project = _load
        self.warehouse = warehouse
        self.project_dir = project_dir
        self._load = load_project
        self._compile = compile_element
        self._run = run_query
        self._lock = threading.Lock()
        self._project: Any = None
        self._stamp: tuple[int, int] | None = None
        self._stamp_checked = 0.0
        self._cache: dict[tuple[Any, ...], tuple[float, str, DashboardData]] = {}
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._suggest_cache: dict[str, tuple[float, dict[str, list[str]]]] = {}
        self._ttl = cache_ttl_s
        self._min_refresh = min_refresh_s
        self._now = now  # pins relative date filters ("7 days"), for benchmarks and tests
        # compiled DuckDB SQL + warehouse version -> its QueryResult: an unchanged warehouse
        # never runs the same query twice (another view with the same tile, a page cache
        # entry past its TTL, the export after the page).
        self._results: dict[tuple[str, str], Any] = {}
        self._results_lock = threading.Lock()
        self.result_hits = 0
        self.result_misses = 0

    # --- the project ---------------------------------------------------------------
    @property
    def project(self) -> Any:
        with self._lock:
            now = time.monotonic()
            if self._project is None or now - self._stamp_checked > 1.0:
                self._stamp_checked = now
                root = Path(self._project.root) if self._project is not None else None
                stamp = _project_stamp(root) if root is not None else None
                if self._project is None or stamp != self._stamp:
                    self._project = self._load(self.project_dir)
                    self._stamp = _project_stamp(Path(self._project.root))
                    self._cache.clear()
                    self._suggest_cache.clear()
            return self._project

    def dashboards(self) -> list[Any]:
        return sorted(self.project.dashboards.values(), key=lambda d: (d.title or d.name).lower())

    def dashboard(self, name: str) -> Any:
        try:
            return self.project.dashboards[name]
        except KeyError:
            raise UnknownDashboard(name) from None

    def filter_values(self, dashboard: Any, args: Mapping[str, str]) -> dict[str, str]:
        """The dashboard's filters from URL arguments (unknown names ignored, else default)."""
        return {
            f.name: str(args[f.name]) if f.name in args else (f.default_value or "")
            for f in dashboard.filters
        }

    # --- data ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return self.warehouse.state().to_dict()

    def data(self, name: str, args: Mapping[str, str] | None = None) -> DashboardData:
        """The dashboard's tiles for these filter values.

        Cached per (dashboard, filters): reused while the warehouse version is the same (for
        ``cache_ttl_s``), and, when the version moved, still reused until the last computation
        is ``max(min_refresh_s, 2 x its duration)`` old — so a warehouse changing every second
        under a slow dashboard costs at most a third of a core, and pages catch up at their
        next poll. Concurrent requests for the same view compute it once.
        """
        dashboard = self.dashboard(name)
        filters = self.filter_values(dashboard, args or {})
        key = (name, tuple(sorted(filters.items())))
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            state = self.warehouse.state()
            now = time.monotonic()
            cached = self._cache.get(key)
            if cached is not None:
                at, version, data = cached
                if version == state.version and now - at < self._ttl:
                    return data
                if version != state.version and now - at < max(
                    self._min_refresh, 2 * data.took_ms / 1000
                ):
                    return data
            started = time.perf_counter()
            tiles = self._tiles(dashboard, filters, state.version)
            suggestions = self._cached_suggestions(dashboard)
            data = DashboardData(
                dashboard,
                filters,
                tiles,
                state.to_dict(),
                int(time.time() * 1000),
                (time.perf_counter() - started) * 1000,
                int(self._now.timestamp() * 1000) if self._now is not None else None,
                suggestions,
            )
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), state.version, data)
            return data

    def tile(self, name: str, element: str, args: Mapping[str, str] | None = None) -> Tile:
        dashboard = self.dashboard(name)
        if not any(e.name == element for e in dashboard.elements):
            raise UnknownElement(element)
        for tile in self.data(name, args).tiles:
            if tile.name == element:
                return tile
        raise UnknownElement(element)

    def _cached_suggestions(self, dashboard: Any) -> dict[str, list[str]]:
        """Suggestions change rarely (a new category): recomputed once a minute at most."""
        now = time.monotonic()
        hit = self._suggest_cache.get(dashboard.name)
        if hit is not None and now - hit[0] < SUGGESTIONS_TTL_S:
            return hit[1]
        values = self._suggestions(dashboard)
        self._suggest_cache[dashboard.name] = (now, values)
        return values

    def _suggestions(self, dashboard: Any) -> dict[str, list[str]]:
        """Values to offer in each string filter: its field's values in its explore (as
        Looker's suggestions), at most 100, only for filters on a string field."""
        from hybridshop.analytics.lookml import compile_query, run_query

        project = self.project
        out: dict[str, list[str]] = {}
        for f in dashboard.filters:
            if not (f.field and f.explore) or f.type == "date_filter":
                continue
            field = _field(project, f.field)
            if field is None or field.category != "dimension" or field.type != "string":
                continue
            compiled = compile_query(
                project, f.model, f.explore, [f.field], sorts=[f"{f.field} asc"], limit=100
            )
            if not compiled.ok:
                continue
            try:
                with self.warehouse.cursor() as cur:
                    rows = run_query(compiled, cur).rows
            except Exception as exc:  # noqa: BLE001 - no suggestions is fine, a broken page is not
                log.debug("no suggestions for filter %s: %s", f.name, exc)
                continue
            out[f.name] = [str(r[f.field]) for r in rows if r.get(f.field) is not None]
        return out

    def clear_results(self) -> None:
        """Forget every cached query result (the next render runs every query: a cold render)."""
        with self._results_lock:
            self._results.clear()
        self.warehouse.forget_facts()

    def _cached_run(self, version: str) -> Callable[[Any, Any], Any]:
        """``run_query`` that reuses the result of the same DuckDB SQL on the same warehouse
        version. The version moves with every applied change (or a new file), so a cached
        result is exactly what the query would return now."""
        from hybridshop.analytics.lookml import run_query as default_run

        if self._run is not None:
            run: Callable[[Any, Any], Any] = self._run
        else:

            def run(compiled: Any, cursor: Any) -> Any:
                # the facts of the very copy this cursor reads (see JoinFact)
                return default_run(compiled, cursor, self.warehouse.facts_for(cursor))

        def cached(compiled: Any, cursor: Any) -> Any:
            sql = getattr(compiled, "duckdb_sql", None)
            if not sql or version == "none" or _reads_the_clock(sql):
                return run(compiled, cursor)
            key = (sql, version)
            with self._results_lock:
                hit = self._results.get(key)
                if hit is not None:
                    self.result_hits += 1
                    return hit
            result = run(compiled, cursor)
            with self._results_lock:
                self.result_misses += 1
                if any(v != version for _, v in self._results):
                    # a new version: results of older ones can never be used again
                    self._results = {k: r for k, r in self._results.items() if k[1] == version}
                if len(self._results) >= MAX_CACHED_RESULTS:
                    self._results.clear()
                self._results[key] = result
            return result

        return cached

    def _tiles(self, dashboard: Any, filters: dict[str, str], version: str = "none") -> list[Tile]:
        project = self.project
        try:
            with self.warehouse.cursor() as cur:
                return [
                    build_tile(
                        project,
                        dashboard,
                        el,
                        cur,
                        filters,
                        compile_element=self._compile,
                        run_query=self._cached_run(version),
                        now=self._now,
                    )
                    for el in dashboard.elements
                ]
        except WarehouseUnavailable as exc:
            tiles = []
            for el in dashboard.elements:
                tile = build_tile(
                    project,
                    dashboard,
                    el,
                    None,
                    filters,
                    compile_element=self._compile,
                    run_query=_unavailable(str(exc)),
                    now=self._now,
                )
                tiles.append(tile)
            return tiles


_CLOCK = re.compile(
    r"\b(current_timestamp|current_date|current_time|now|get_current_timestamp|localtimestamp"
    r"|today|random|uuid|gen_random_uuid)\b",
    re.IGNORECASE,
)


def _reads_the_clock(sql: str) -> bool:
    """A query whose result moves with time (freshness = now - latest change) is never cached."""
    return _CLOCK.search(sql) is not None


def _unavailable(message: str) -> Callable[[Any, Any], Any]:
    def run(compiled: Any, warehouse: Any) -> Any:
        raise WarehouseUnavailable(message)

    return run


def _field(project: Any, ref: str) -> Any:
    """The LookML field ``view.field`` of the project, or None."""
    view_name, _, name = ref.partition(".")
    view = getattr(project, "views", {}).get(view_name)
    return None if view is None else view.fields.get(name)
