"""``hybridshop dashboards export``: per dashboard a self-contained HTML file and a PNG.

The HTML is the live page with everything inline — the vega bundle, the page script, the
styles and the data — and a Content-Security-Policy that forbids any connection, so it
opens from a disk, an e-mail or a wiki with no network. Tabs link to the sibling files.
The PNG is drawn without a browser (png.py). ``index.html`` lists what was exported.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from hybridshop.analytics.render import bundle
from hybridshop.analytics.render.app import json_for_script
from hybridshop.analytics.render.png import dashboard_png
from hybridshop.analytics.render.service import DashboardData, DashboardService

_HERE = Path(__file__).parent
_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)


@dataclass
class Exported:
    name: str
    title: str
    html: Path | None
    png: Path | None
    pdf: Path | None
    data_ms: float
    html_ms: float
    png_ms: float
    tiles: int
    errors: int

    @property
    def total_ms(self) -> float:
        return self.data_ms + self.html_ms + self.png_ms


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    env.filters["script_json"] = json_for_script
    return env


def inline_script(js: str) -> str:
    """JavaScript safe inside an inline ``<script>`` element."""
    return _SCRIPT_END.sub(r"<\\/\1", js).replace("<!--", "<\\!--")


def dashboard_html(data: DashboardData, tabs: list[tuple[str, str, bool]] | None = None) -> str:
    """The self-contained page of one dashboard."""
    inline = {
        "css": (_HERE / "static" / "dashboard.css")
        .read_text(encoding="utf-8")
        .replace("</", "<\\/"),
        "bundle": inline_script(bundle.vega_bundle()),
        "app": inline_script((_HERE / "static" / "dashboard.js").read_text(encoding="utf-8")),
    }
    return (
        _env()
        .get_template("dashboard.html")
        .render(
            data=data.to_dict(),
            title=data.dashboard.title or data.dashboard.name,
            inline=inline,
            tabs=tabs or [],
        )
    )


def export_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def export_dashboard(
    service: DashboardService,
    name: str,
    out_dir: Path,
    *,
    filters: Mapping[str, str] | None = None,
    html: bool = True,
    png: bool = True,
    pdf: bool = False,
    scale: float = 2.0,
    tabs: list[tuple[str, str, bool]] | None = None,
) -> Exported:
    started = time.perf_counter()
    data = service.data(name, filters or {})
    data_ms = (time.perf_counter() - started) * 1000
    base = export_file_name(name)
    html_path = png_path = None
    html_ms = png_ms = 0.0
    if html:
        t = time.perf_counter()
        html_path = out_dir / f"{base}.html"
        html_path.write_text(dashboard_html(data, tabs), encoding="utf-8")
        html_ms = (time.perf_counter() - t) * 1000
    pdf_path = None
    if png or pdf:
        t = time.perf_counter()
        image = dashboard_png(data.to_dict(), scale=scale)
        if png:
            png_path = out_dir / f"{base}.png"
            png_path.write_bytes(image)
        if pdf:  # the same picture on one page, as tall as the dashboard
            from PIL import Image

            pdf_path = out_dir / f"{base}.pdf"
            Image.open(io.BytesIO(image)).convert("RGB").save(
                pdf_path, "PDF", resolution=72 * scale, title=data.dashboard.title or name
            )
        png_ms = (time.perf_counter() - t) * 1000
    return Exported(
        name,
        data.dashboard.title or name,
        html_path,
        png_path,
        pdf_path,
        data_ms,
        html_ms,
        png_ms,
        len(data.tiles),
        sum(1 for t in data.tiles if t.errors),
    )


def export_dashboards(
    service: DashboardService,
    out_dir: Path,
    names: Iterable[str] | None = None,
    *,
    filters: Mapping[str, str] | None = None,
    html: bool = True,
    png: bool = True,
    pdf: bool = False,
    scale: float = 2.0,
    progress: Callable[[str], None] | None = None,
) -> list[Exported]:
    """Export ``names`` (default: every dashboard) into ``out_dir``; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    every = service.dashboards()
    wanted = list(names) if names else [d.name for d in every]
    for n in wanted:
        service.dashboard(n)  # UnknownDashboard before anything is written
    results = []
    for n in wanted:
        if progress is not None:
            progress(n)
        tabs = [
            (quote(export_file_name(d.name)) + ".html", d.title or d.name, d.name == n)
            for d in every
            if d.name in wanted
        ]
        # a filter given on the command line applies to the dashboards that have it
        dash_filters = {
            k: v for k, v in (filters or {}).items() if service.dashboard(n).filter(k) is not None
        }
        results.append(
            export_dashboard(
                service,
                n,
                out_dir,
                filters=dash_filters,
                html=html,
                png=png,
                pdf=pdf,
                scale=scale,
                tabs=tabs,
            )
        )
    if html:
        (out_dir / "index.html").write_text(_index(results), encoding="utf-8")
    return results


def _index(results: list[Exported]) -> str:
    return (
        _env()
        .from_string(
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Dashboards</title>"
            "<style>body{font-family:'Liberation Sans',Arial,sans-serif;margin:32px;color:#1f2937}"
            "li{margin:14px 0}img{max-width:480px;border:1px solid #e5e7eb;display:block;margin-top:6px}"
            "</style></head><body><h1>Dashboards</h1><ul>{% for r in results %}<li>"
            '<a href="{{ r.html.name }}">{{ r.title }}</a>'
            '{% if r.png %}<a href="{{ r.png.name }}"><img src="{{ r.png.name }}" alt="{{ r.title }}"></a>'
            "{% endif %}</li>{% endfor %}</ul></body></html>"
        )
        .render(results=results)
    )


def export_summary(results: list[Exported]) -> list[dict[str, Any]]:
    return [
        {
            "dashboard": r.name,
            "html": str(r.html) if r.html else None,
            "png": str(r.png) if r.png else None,
            "pdf": str(r.pdf) if r.pdf else None,
            "tiles": r.tiles,
            "tile_errors": r.errors,
            "data_ms": round(r.data_ms, 1),
            "html_ms": round(r.html_ms, 1),
            "png_ms": round(r.png_ms, 1),
            "export_ms": round(r.total_ms, 1),
        }
        for r in results
    ]
