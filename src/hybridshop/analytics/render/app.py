"""The dashboards web app (Flask): index, one page per dashboard, JSON, CSV, the JS bundle.

Routes:
- ``/`` the dashboards of the Looker project (and any project problems, file:line).
- ``/dashboards/<name>?<filter>=<expression>`` a dashboard in its newspaper layout; filter
  values live in the URL so a view can be shared. The first data are in the page.
- ``/api/dashboards/<name>?...`` the tiles as JSON; ``/api/state`` the warehouse version and
  per-table freshness (the page polls it and refetches when the version moves).
- ``/api/dashboards/<name>/tiles/<element>.csv?...`` "download CSV".
- ``/static/vega-bundle.js`` vega + vega-lite + vega-embed from vl-convert (no CDN).

Every response carries a Content-Security-Policy that allows scripts only from this
server (Vega compiles its expressions, hence ``'unsafe-eval'``) and connections only back to
it: nothing on the page can reach another host.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, render_template, request

from hybridshop.analytics.render import bundle
from hybridshop.analytics.render.service import (
    DashboardService,
    UnknownDashboard,
    UnknownElement,
)

EXTENSION = "hybridshop.dashboards"
CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HERE = Path(__file__).parent


def json_for_script(payload: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    """CSV with spreadsheet formula injection neutralised (a cell starting = + - @ is quoted)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [
                "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
                for v in row
            ]
        )
    return out.getvalue()


LOOPBACK_NAMES = {"127.0.0.1", "localhost", "[::1]"}


def create_app(service: DashboardService, *, allowed_hosts: set[str] | None = None) -> Flask:
    """The app; ``allowed_hosts`` (host names, no port) guards against DNS rebinding.

    Served on loopback, only requests addressed to a loopback name are answered: a web page
    elsewhere cannot point its own host name at 127.0.0.1 and read the dashboards.
    ``None`` allows any host (the server was told to listen beyond loopback).
    """
    app = Flask(
        __name__,
        template_folder=str(_HERE / "templates"),
        static_folder=str(_HERE / "static"),
        static_url_path="/static",
    )
    app.extensions[EXTENSION] = service
    app.jinja_env.filters["script_json"] = json_for_script

    @app.before_request
    def _host() -> Response | None:
        if allowed_hosts is None:
            return None
        host = (request.host or "").lower()
        name = host[: host.find("]") + 1] if host.startswith("[") else host.split(":")[0]
        if name not in allowed_hosts:
            return Response("unknown host\n", status=421, mimetype="text/plain")
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if resp.mimetype in {"text/html", "application/json"}:
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.get("/")
    def index() -> str:
        project = service.project
        return render_template(
            "index.html",
            dashboards=service.dashboards(),
            errors=[str(e) for e in getattr(project, "errors", [])],
            state=service.state(),
        )

    @app.get("/dashboards/<name>")
    def dashboard(name: str) -> str:
        try:
            data = service.data(name, request.args.to_dict())
        except UnknownDashboard:
            abort(404, f"no dashboard {name!r}")
        return render_template(
            "dashboard.html",
            data=data.to_dict(),
            title=data.dashboard.title or name,
            inline=None,
            tabs=[
                (f"/dashboards/{d.name}", d.title or d.name, d.name == name)
                for d in service.dashboards()
            ],
        )

    @app.get("/api/dashboards/<name>")
    def dashboard_json(name: str) -> Response:
        try:
            data = service.data(name, request.args.to_dict())
        except UnknownDashboard:
            abort(404, f"no dashboard {name!r}")
        return Response(json.dumps(data.to_dict(), allow_nan=False), mimetype="application/json")

    @app.get("/api/state")
    def state() -> Response:
        return Response(json.dumps(service.state()), mimetype="application/json")

    @app.get("/api/dashboards/<name>/tiles/<element>.csv")
    def tile_csv(name: str, element: str) -> Response:
        try:
            tile = service.tile(name, element, request.args.to_dict())
        except (UnknownDashboard, UnknownElement):
            abort(404, f"no element {element!r} in dashboard {name!r}")
        if tile.errors:
            return Response("\n".join(tile.errors) + "\n", status=409, mimetype="text/plain")
        header, rows = tile.csv_rows()
        resp = Response(csv_text(header, rows), mimetype="text/csv")
        resp.headers["Content-Disposition"] = f'attachment; filename="{name}-{element}.csv"'
        return resp

    @app.get("/static/vega-bundle.js")
    def vega_bundle() -> Response:
        etag = bundle.bundle_etag()
        if request.if_none_match.contains(etag):
            return Response(status=304)
        resp = Response(bundle.vega_bundle(), mimetype="text/javascript")
        resp.set_etag(etag)
        resp.headers["Cache-Control"] = "public, max-age=86400"
        return resp

    @app.get("/health")
    def health() -> Response:
        """Liveness, the same path and body as the shop's (``web/views/health.py``; not
        ``/healthz``, which Cloud Run's front end reserves)."""
        return Response(json.dumps({"status": "ok"}), mimetype="application/json")

    @app.errorhandler(404)
    def not_found(exc: Any) -> tuple[str, int]:
        return render_template("error.html", message=getattr(exc, "description", "not found")), 404

    return app
