"""``hybridshop dashboards export``: a self-contained HTML and a whole-dashboard PNG."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from hybridshop.analytics.render.png import MARGIN, WIDTH, Canvas, _header, grid_box
from hybridshop.cli.main import app

from .render_support import XSS, demo_shop, make_project, write_warehouse

SCALE = 1.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("export")
    warehouse = root / "warehouse.read.duckdb"
    write_warehouse(warehouse, demo_shop())
    project = make_project(root / "looker")
    out = root / "out"
    result = CliRunner().invoke(
        app,
        [
            "dashboards",
            "export",
            "--out",
            str(out),
            "--warehouse",
            str(warehouse),
            "--project",
            str(project),
            "--dashboard",
            "render_check",
            "--dashboard",
            "sales",
            "--scale",
            str(SCALE),
            "--pdf",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_writes_html_and_png_per_dashboard(exported: tuple[Path, list[dict]]):
    out, summary = exported
    assert [s["dashboard"] for s in summary] == ["render_check", "sales"]
    for s in summary:
        assert Path(s["html"]).is_file() and Path(s["png"]).is_file()
        assert Path(s["pdf"]).read_bytes().startswith(b"%PDF")
        assert s["tile_errors"] == 0
    assert (out / "index.html").is_file()
    assert 'href="sales.html"' in (out / "index.html").read_text()


def test_html_is_self_contained(exported: tuple[Path, list[dict]]):
    out, _ = exported
    html = (out / "render_check.html").read_text()
    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    assert "window.vegaEmbed" in html  # the charting bundle is inline
    assert "connect-src 'none'" in html  # and the page may not connect anywhere
    # every URL left is a namespace or a schema id inside the bundle / the data, never loaded
    for url in set(re.findall(r"""(?:src|href)=["'](https?:[^"']+)""", html)):
        pytest.fail(f"the page loads {url}")
    assert XSS not in html  # the product name is inside the JSON data, escaped
    data = re.search(r'id="dashboard-data">(.*?)</script>', html, re.S)
    assert data is not None
    tiles = {t["name"]: t for t in json.loads(data.group(1))["tiles"]}
    assert tiles["revenue"]["text"][0]["f0"] == "€462.40"
    assert 'href="sales.html"' in html  # tabs link to the sibling export


def test_png_holds_the_whole_layout(exported: tuple[Path, list[dict]]):
    out, _ = exported
    data = json.loads(
        re.search(  # type: ignore[union-attr]
            r'id="dashboard-data">(.*?)</script>', (out / "render_check.html").read_text(), re.S
        ).group(1)
    )
    image = Image.open(out / "render_check.png").convert("RGB")
    assert image.width == round(WIDTH * SCALE)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    top = _header(Canvas(Image.new("RGB", (1, 1)), probe, SCALE), data, measure_only=True)
    bottom = max(grid_box(t["layout"], top)[3] for t in data["tiles"])
    assert image.height >= round((bottom + MARGIN) * SCALE)  # nothing cut off at the bottom
    for t in data["tiles"]:
        x0, y0, x1, y1 = (round(v * SCALE) for v in grid_box(t["layout"], top))
        tile = image.crop((x0 + 4, y0 + 40, x1 - 4, y1 - 4))
        colors = tile.getcolors(maxcolors=1_000_000) or []
        dark = sum(n for n, c in colors if sum(c) < 450)  # text (gray or black)
        tinted = sum(n for n, c in colors if max(c) - min(c) > 60)  # chart marks
        assert dark > 50, f"{t['name']}: no text drawn"
        if t["kind"] == "chart":
            assert tinted > 200, f"{t['name']}: no chart drawn"


def test_export_of_unknown_dashboard_fails_clearly(tmp_path: Path):
    warehouse = tmp_path / "w.duckdb"
    write_warehouse(warehouse, demo_shop())
    result = CliRunner().invoke(
        app,
        [
            "dashboards",
            "export",
            "--out",
            str(tmp_path / "o"),
            "--warehouse",
            str(warehouse),
            "--dashboard",
            "nope",
        ],
    )
    assert result.exit_code == 1
    assert "no dashboard" in result.output and "sales" in result.output
    result = CliRunner().invoke(
        app, ["dashboards", "export", "--warehouse", str(tmp_path / "missing.duckdb")]
    )
    assert result.exit_code == 1 and "no warehouse at" in result.output
