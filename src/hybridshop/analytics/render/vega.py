"""Vega-Lite specs for Looker's chart types, built from a tile's rows.

One spec serves the page (vega-embed, ``width``/``height`` = "container"), the
self-contained HTML and the PNG (vl-convert, fixed pixel size). The data are in long form —
one record per (x, series) with the number and the text a person reads — so every chart type
has the same shape: ``x``/``xl`` (value, label), ``s`` (series: a pivot value, a measure when
there are several, or a second dimension), ``y``/``yf`` (value, formatted). Tooltips show
only the formatted text fields; Vega renders text as text, and vega-embed's tooltip handler
escapes HTML, so a product named ``<img onerror=...>`` stays a string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hybridshop.analytics.render.tiles import Column

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
# Looker's default categorical palette (as its charts show it)
PALETTE = [
    "#3EB0D5",
    "#B1399E",
    "#C2DD67",
    "#592EC2",
    "#4276BE",
    "#72D16D",
    "#FFD95F",
    "#B32F37",
    "#9174F0",
    "#E57947",
    "#75E2E2",
    "#FBB555",
]
FONT = "Liberation Sans, Helvetica, Arial, sans-serif"
TEMPORAL_TIMEFRAMES = {"raw", "time", "date", "week", "month", "quarter", "minute", "hour"}
TEMPORAL_TYPES = {"date", "date_time", "datetime", "time", "timestamp"}
_ISO = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")
_TIME_UNIT = {
    "date": "utcyearmonthdate",
    "week": "utcyearmonthdate",
    "month": "utcyearmonth",
    "quarter": "utcyearquarter",
    "hour": "utcyearmonthdatehours",
    "minute": "utcyearmonthdatehoursminutes",
}
_AXIS_FORMAT = {
    "month": "%b %Y",
    "quarter": "%Y Q%q",
    "week": "%b %d",
    "date": "%b %d",
    "time": "%b %d %H:%M",
    "raw": "%b %d %H:%M",
    "minute": "%H:%M",
    "hour": "%b %d %H:00",
}

CONFIG: dict[str, Any] = {
    "font": FONT,
    "background": "white",
    "view": {"stroke": None},
    "range": {"category": PALETTE},
    "axis": {
        "labelColor": "#4b5563",
        "titleColor": "#374151",
        "gridColor": "#e5e7eb",
        "domainColor": "#9ca3af",
        "tickColor": "#9ca3af",
        "labelFontSize": 11,
        "titleFontSize": 11,
        "titleFontWeight": "normal",
        "labelLimit": 160,
    },
    "legend": {
        "labelColor": "#374151",
        "titleColor": "#374151",
        "labelFontSize": 11,
        "titleFontSize": 11,
        "orient": "bottom",
        "labelLimit": 180,
        "symbolType": "circle",
    },
    "line": {"strokeWidth": 2},
    "point": {"filled": True, "size": 36},
    "bar": {"cornerRadiusEnd": 2},
}


def is_temporal(col: Column) -> bool:
    if col.timeframe:
        return str(col.timeframe) in TEMPORAL_TIMEFRAMES
    return col.type in TEMPORAL_TYPES


def iso_utc(value: Any) -> str | None:
    """A Looker time value ("2024-01", "2024-01-07", "2024-01-07 03:00:00") as ISO UTC."""
    if value is None:
        return None
    m = _ISO.match(str(value))
    if m is None:
        return None
    year, month, day, hour, minute, second = m.groups()
    return f"{year}-{month}-{day or '01'}T{hour or '00'}:{minute or '00'}:{second or '00'}Z"


def _quarter_label(value: Any) -> str | None:
    m = _ISO.match(str(value)) if value is not None else None
    if m is None:
        return None
    return f"{m.group(1)}-Q{(int(m.group(2)) - 1) // 3 + 1}"


def long_form(
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    text: Sequence[Mapping[str, str]],
    pivots: Sequence[str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records (x, xl, s, y, yf) and what they mean (labels, temporal or not)."""
    pivot_cols = [c for c in columns if c.name in pivots]
    dims = [c for c in columns if c.category == "dimension" and c.name not in pivots]
    measures = [c for c in columns if c.category == "measure"]
    if not measures:  # a chart of dimensions only: count them
        measures = []
    x = dims[0] if dims else None
    temporal = x is not None and is_temporal(x)
    series_label = ""
    if pivot_cols:
        series_label = " · ".join(c.label for c in pivot_cols)
    elif len(measures) > 1:
        series_label = ""
    elif len(dims) > 1:
        series_label = dims[1].label
    records: list[dict[str, Any]] = []
    for row, txt in zip(rows, text, strict=True):
        xl = txt.get(x.key, "") if x is not None else ""
        if x is not None and x.timeframe == "quarter":
            xl = _quarter_label(row.get(x.key)) or xl
        xv: Any = row.get(x.key) if x is not None else ""
        if temporal:
            xv = iso_utc(xv)
        for m in measures:
            if pivot_cols:
                s = " · ".join(txt.get(c.key, "") for c in pivot_cols)
                if len(measures) > 1:
                    s = f"{s} · {m.label}"
            elif len(measures) > 1:
                s = m.label
            elif len(dims) > 1:
                s = txt.get(dims[1].key, "")
            else:
                s = ""
            records.append({"x": xv, "xl": xl, "s": s, "y": row.get(m.key), "yf": txt.get(m.key)})
    meta = {
        "x_label": x.label if x is not None else "",
        "x_timeframe": x.timeframe if x is not None else None,
        "x_numeric": x is not None and x.type in {"number", "int"} and not temporal,
        "temporal": temporal,
        "y_label": measures[0].label if len(measures) == 1 else "",
        "series_label": series_label,
        "has_series": any(r["s"] for r in records),
        "measures": [m.label for m in measures],
    }
    return records, meta


def axis_format(records: Sequence[Mapping[str, Any]], texts: Sequence[Any]) -> str | None:
    """d3 format for a value axis: percentages as %, big numbers as 12k / 1.2M, else default."""
    if texts and all(isinstance(t, str) and t.endswith("%") for t in texts if t):
        return ".0%"
    peak = max((abs(float(r["y"])) for r in records if r.get("y") is not None), default=0.0)
    return "~s" if peak >= 10000 else None


def _tooltip(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    tips: list[dict[str, Any]] = [
        {"field": "xl", "type": "nominal", "title": meta["x_label"] or " "}
    ]
    if meta["has_series"]:
        tips.append({"field": "s", "type": "nominal", "title": meta["series_label"] or "Series"})
    tips.append({"field": "yf", "type": "nominal", "title": meta["y_label"] or "Value"})
    return tips


def _color(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    if not meta["has_series"]:
        return None
    return {
        "field": "s",
        "type": "nominal",
        "sort": None,
        "title": meta["series_label"] or None,
    }


def chart_spec(
    chart: str,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    text: Sequence[Mapping[str, str]],
    pivots: Sequence[str],
    vis: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Vega-Lite spec of one chart tile (``chart``: line, area, column, bar, pie, scatter)."""
    vis = vis or {}
    records, meta = long_form(columns, rows, text, pivots)
    spec: dict[str, Any] = {
        "$schema": SCHEMA,
        "data": {"values": records},
        "width": "container",
        "height": "container",
        "autosize": {"type": "fit", "contains": "padding", "resize": True},
        "config": CONFIG,
        "usermeta": {"chart": chart},
    }
    y_axis: dict[str, Any] = {"title": meta["y_label"] or None}
    fmt = axis_format(records, [r["yf"] for r in records])
    if fmt:
        y_axis["format"] = fmt
    y: dict[str, Any] = {"field": "y", "type": "quantitative", "axis": y_axis}
    stacking = str(vis.get("stacking") or "")
    color = _color(meta)
    tooltip = _tooltip(meta)

    if chart == "pie":
        spec["mark"] = {"type": "arc", "innerRadius": 0, "stroke": "white", "strokeWidth": 1}
        spec["encoding"] = {
            "theta": {"field": "y", "type": "quantitative", "stack": True},
            "color": {
                "field": "xl",
                "type": "nominal",
                "sort": None,
                "title": meta["x_label"] or None,
                "legend": {"orient": "right"},
            },
            "order": {"field": "y", "type": "quantitative", "sort": "descending"},
            "tooltip": tooltip,
        }
        return spec

    if chart in {"line", "area", "scatter"} and meta["temporal"]:
        x: dict[str, Any] = {
            "field": "x",
            "type": "temporal",
            "scale": {"type": "utc"},
            "title": meta["x_label"] or None,
            "axis": {
                "format": _AXIS_FORMAT.get(str(meta["x_timeframe"]), "%b %d"),
                "labelAngle": 0,
                "labelOverlap": "greedy",
                "labelSeparation": 8,
            },
        }
        unit = _TIME_UNIT.get(str(meta["x_timeframe"]))
        if unit:  # ticks on whole days / months, not every 6 hours
            x["timeUnit"] = unit
    elif chart == "scatter" and meta["x_numeric"]:
        x = {"field": "x", "type": "quantitative", "title": meta["x_label"] or None}
    else:
        x = {
            "field": "xl",
            "type": "ordinal" if meta["temporal"] else "nominal",
            "sort": None,
            "title": meta["x_label"] or None,
            "axis": {"labelAngle": -40 if len(records) > 8 else 0, "labelLimit": 120},
        }
    if meta["temporal"] and chart in {"column", "bar"}:
        # a time axis reads left to right (top to bottom) whatever the query's sort
        records.sort(key=lambda r: (r["x"] is None, r["x"] or ""))

    dual = _dual_axis(chart, records, meta, pivots)
    if dual is not None:
        spec["layer"] = _dual_layers(chart, x, dual, tooltip, records)
        spec["resolve"] = {"scale": {"y": "independent"}}
        return spec

    encoding: dict[str, Any] = {"x": x, "y": y, "tooltip": tooltip}
    if color is not None:
        encoding["color"] = color

    if chart == "line":
        spec["mark"] = {"type": "line", "point": len(records) <= 60}
    elif chart == "area":
        spec["mark"] = {"type": "area", "line": True, "opacity": 0.7, "point": len(records) <= 31}
        y["stack"] = "normalize" if stacking == "percent" else True
    elif chart == "scatter":
        spec["mark"] = {"type": "point", "filled": True, "size": 60, "opacity": 0.8}
    elif chart in {"column", "bar"}:
        spec["mark"] = {"type": "bar"}
        if color is not None:
            if stacking in {"normal", "percent"}:
                y["stack"] = "normalize" if stacking == "percent" else True
            else:
                y["stack"] = None
                encoding["xOffset" if chart == "column" else "yOffset"] = {
                    "field": "s",
                    "sort": None,
                }
        else:
            spec["mark"]["color"] = PALETTE[0]
        if chart == "bar":  # Looker's bar is horizontal
            x_enc, y_enc = encoding.pop("x"), encoding.pop("y")
            x_enc["axis"] = {"labelLimit": 180}
            encoding["y"], encoding["x"] = x_enc, y_enc
    else:
        raise ValueError(f"unknown chart {chart!r}")
    if chart in {"line", "area", "scatter"} and color is None:
        spec["mark"]["color"] = PALETTE[0]
    spec["encoding"] = encoding
    return spec


def _dual_axis(
    chart: str, records: list[dict[str, Any]], meta: Mapping[str, Any], pivots: Sequence[str]
) -> tuple[str, str] | None:
    """Two measures of different magnitude (revenue and orders): one y axis each."""
    measures = meta["measures"]
    if chart not in {"line", "area", "column", "scatter"} or pivots or len(measures) != 2:
        return None
    if {r["s"] for r in records} - set(measures):
        return None  # a second dimension is the series, not the measures
    peaks = []
    for m in measures:
        values = [abs(float(r["y"])) for r in records if r["s"] == m and r["y"] is not None]
        peaks.append(max(values, default=0.0))
    low, high = sorted(peaks)
    if high == 0 or (low > 0 and high / low < 5):
        return None
    return measures[0], measures[1]


def _dual_layers(
    chart: str,
    x: dict[str, Any],
    series: tuple[str, str],
    tooltip: list[dict[str, Any]],
    records: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Left axis: the first measure as the chart type; right axis: the second as a line."""
    layers = []
    for i, name in enumerate(series):
        color = PALETTE[i]
        mine = [r for r in records if r["s"] == name]
        if i == 0 and chart == "column":
            mark: dict[str, Any] = {"type": "bar", "color": color}
        elif chart == "scatter":
            mark = {"type": "point", "filled": True, "size": 60, "color": color}
        elif i == 0 and chart == "area":
            mark = {
                "type": "area",
                "line": True,
                "opacity": 0.6,
                "color": color,
                "point": len(records) <= 62,
            }
        else:
            mark = {"type": "line", "color": color, "point": len(records) <= 120}
        layers.append(
            {
                "transform": [{"filter": {"field": "s", "equal": name}}],
                "mark": mark,
                "encoding": {
                    "x": x,
                    "y": {
                        "field": "y",
                        "type": "quantitative",
                        "axis": {
                            "title": name,
                            "titleColor": color,
                            "orient": "left" if i == 0 else "right",
                            "grid": i == 0,
                            **(
                                {"format": fmt}
                                if (fmt := axis_format(mine, [r["yf"] for r in mine]))
                                else {}
                            ),
                        },
                    },
                    "tooltip": tooltip,
                },
            }
        )
    return layers


def sized(spec: Mapping[str, Any], width: int, height: int) -> dict[str, Any]:
    """The same spec at a fixed pixel size (PNG export; vl-convert has no container)."""
    out = dict(spec)
    out["width"], out["height"] = max(60, width), max(40, height)
    out["autosize"] = {"type": "fit", "contains": "padding"}
    return out
