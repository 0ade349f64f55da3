"""Loading a Looker project: manifest constants, models, includes, views and dashboards.

Models and views are parsed with ``lkml`` (which returns plain dicts and strings and knows no
line numbers), dashboards with PyYAML. Line numbers are found in the source text so every
problem can be reported as ``file:line``. Loading never stops at the first problem: each one
becomes an ``ElementError`` in ``Project.errors`` and the rest of the project stays usable.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Any

import lkml
import yaml

from hybridshop.analytics.lookml.errors import ElementError

TIMEFRAMES = (
    "raw",
    "time",
    "minute",
    "hour",
    "date",
    "week",
    "month",
    "quarter",
    "year",
    "hour_of_day",
    "day_of_week",
    "day_of_week_index",
    "day_of_month",
    "month_num",
    "week_of_year",
)
DEFAULT_TIMEFRAMES = ["raw", "time", "date", "week", "month", "quarter", "year"]
MEASURE_TYPES = {
    "count",
    "count_distinct",
    "sum",
    "average",
    "min",
    "max",
    "number",
    "median",
    "percentile",
}
DIMENSION_TYPES = {"string", "number", "yesno", "tier", "date", "time", "zipcode"}
_LIQUID = re.compile(r"\{\{|\{%")


@dataclass
class Field:
    """A dimension (a timeframe of a dimension group is one too) or a measure of a view."""

    view: str
    name: str
    category: str  # dimension | measure | filter | parameter
    type: str
    sql: str | None
    file: str
    line: int
    label: str | None = None
    description: str | None = None
    group_label: str | None = None
    value_format: str | None = None
    value_format_name: str | None = None
    primary_key: bool = False
    hidden: bool = False
    group: str | None = None  # dimension group name, for timeframe fields
    timeframe: str | None = None
    datatype: str | None = None
    tiers: list[float] = _field(default_factory=list)
    style: str = "classic"
    filters: list[tuple[str, str]] = _field(default_factory=list)  # measure filters
    percentile: float | None = None
    raw: dict[str, Any] = _field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.view}.{self.name}"

    @property
    def is_measure(self) -> bool:
        return self.category == "measure"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def display_label(self) -> str:
        if self.label:
            return self.label
        words = self.name.replace("_", " ").split()
        return " ".join(w[:1].upper() + w[1:] for w in words)


@dataclass
class View:
    name: str
    file: str
    line: int
    sql_table_name: str | None
    fields: dict[str, Field] = _field(default_factory=dict)
    label: str | None = None
    raw: dict[str, Any] = _field(default_factory=dict)

    def primary_key(self) -> Field | None:
        for f in self.fields.values():
            if f.primary_key:
                return f
        return None


@dataclass
class Join:
    name: str
    view_name: str  # from:, default the join name
    sql_on: str | None
    relationship: str
    type: str
    file: str
    line: int
    required_joins: list[str] = _field(default_factory=list)


@dataclass
class AggregateTable:
    """An explore's ``aggregate_table:`` (Looker's aggregate awareness): a roll-up of the
    explore at the grain of ``dimensions`` with ``measures``, restricted by ``filters``
    (field -> filter expression), persisted per ``materialization`` (``datagroup_trigger``,
    ``sql_trigger_value``, ``persist_for``, ...). Matching rules: ``aggregates.py``."""

    name: str
    explore: str
    file: str
    line: int
    dimensions: list[str] = _field(default_factory=list)
    measures: list[str] = _field(default_factory=list)
    filters: dict[str, str] = _field(default_factory=dict)
    timezone: str | None = None
    materialization: dict[str, Any] = _field(default_factory=dict)


@dataclass
class Explore:
    name: str
    model: str
    view_name: str  # from:, default the explore name
    file: str
    line: int
    label: str | None = None
    joins: dict[str, Join] = _field(default_factory=dict)
    sql_always_where: str | None = None
    always_filter: list[tuple[str, str]] = _field(default_factory=list)
    aggregate_tables: list[AggregateTable] = _field(default_factory=list)


@dataclass
class Model:
    name: str
    file: str
    connection: str | None
    includes: list[str]
    explores: dict[str, Explore] = _field(default_factory=dict)
    week_start_day: str = "monday"
    datagroups: dict[str, dict[str, Any]] = _field(default_factory=dict)


@dataclass
class DashboardFilter:
    name: str
    title: str
    type: str  # field_filter | date_filter | string_filter | number_filter
    default_value: str
    file: str
    line: int
    model: str | None = None
    explore: str | None = None
    field: str | None = None
    allow_multiple_values: bool = True
    required: bool = False
    ui_config: dict[str, Any] = _field(default_factory=dict)
    raw: dict[str, Any] = _field(default_factory=dict)


@dataclass
class DashboardElement:
    name: str
    title: str
    type: str
    file: str
    line: int
    model: str | None = None
    explore: str | None = None
    fields: list[str] = _field(default_factory=list)
    pivots: list[str] = _field(default_factory=list)
    fill_fields: list[str] = _field(default_factory=list)
    sorts: list[str] = _field(default_factory=list)
    limit: int | None = None
    filters: dict[str, str] = _field(default_factory=dict)
    listen: dict[str, str] = _field(default_factory=dict)
    row: int = 0
    col: int = 0
    width: int = 8
    height: int = 6
    note_text: str | None = None
    title_text: str | None = None
    subtitle_text: str | None = None
    body_text: str | None = None
    refresh: str | None = None
    raw: dict[str, Any] = _field(default_factory=dict)
    lines: dict[str, int] = _field(default_factory=dict)  # key -> line, for messages

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


@dataclass
class Dashboard:
    name: str
    title: str
    file: str
    line: int
    layout: str = "newspaper"
    description: str | None = None
    refresh: str | None = None
    filters: list[DashboardFilter] = _field(default_factory=list)
    elements: list[DashboardElement] = _field(default_factory=list)
    raw: dict[str, Any] = _field(default_factory=dict)

    def element(self, name: str) -> DashboardElement:
        for e in self.elements:
            if e.name == name:
                return e
        raise KeyError(f"dashboard {self.name!r} has no element {name!r}")

    def filter(self, name: str) -> DashboardFilter | None:
        for f in self.filters:
            if f.name == name:
                return f
        return None


@dataclass
class Project:
    root: Path
    constants: dict[str, str] = _field(default_factory=dict)
    models: dict[str, Model] = _field(default_factory=dict)
    views: dict[str, View] = _field(default_factory=dict)
    dashboards: dict[str, Dashboard] = _field(default_factory=dict)
    errors: list[ElementError] = _field(default_factory=list)
    # fields that cannot compile (parameter, Liquid, unsupported type): ref -> file:line reason
    broken: dict[str, str] = _field(default_factory=dict)

    def explore(self, model: str | None, name: str | None) -> Explore | None:
        if name is None:
            return None
        if model is not None:
            m = self.models.get(model)
            return m.explores.get(name) if m else None
        for m in self.models.values():
            if name in m.explores:
                return m.explores[name]
        return None

    def field(self, ref: str) -> Field | None:
        view, _, name = ref.partition(".")
        v = self.views.get(view)
        return v.fields.get(name) if v else None


def default_project_path() -> Path:
    """The ``looker/`` folder: this repository's (a checkout or an editable install), else the
    copy a wheel installs under ``<prefix>/share/hybridshop/looker``, else the current
    directory's."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "looker"
        if (candidate / "manifest.lkml").exists():
            return candidate
    installed = Path(sys.prefix) / "share" / "hybridshop" / "looker"
    if (installed / "manifest.lkml").exists():
        return installed
    return Path.cwd() / "looker"


# --- source positions -------------------------------------------------------------------
def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


class _Source:
    """Finds the line of ``kind: name`` blocks in a LookML file (lkml keeps no positions)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def find(self, kind: str, name: str, start: int = 0, end: int | None = None) -> int:
        pattern = re.compile(rf"(?m)^\s*{re.escape(kind)}\s*:\s*\"?{re.escape(name)}\"?\s*[{{\n]")
        m = pattern.search(self.text, start, len(self.text) if end is None else end)
        return m.start() + (len(m.group(0)) - len(m.group(0).lstrip())) if m else -1

    def line(self, kind: str, name: str, start: int = 0, end: int | None = None) -> int:
        pos = self.find(kind, name, start, end)
        return _line_at(self.text, pos) if pos >= 0 else 1

    def block(self, kind: str, name: str) -> tuple[int, int]:
        """Start and end offsets of a top-level block (until the next one of its kind)."""
        pos = self.find(kind, name)
        if pos < 0:
            return 0, len(self.text)
        nxt = re.compile(rf"(?m)^\s*{re.escape(kind)}\s*:").search(self.text, pos + 1)
        return pos, nxt.start() if nxt else len(self.text)


# --- includes ---------------------------------------------------------------------------
def _include_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def resolve_include(pattern: str, including_file: str, files: list[str]) -> list[str]:
    """Project-relative files an ``include:`` pattern names, as Looker resolves them.

    ``/x`` is relative to the project root, anything else to the including file's folder;
    ``*`` stays inside a folder, ``**/`` spans folders; a pattern without a ``.lkml`` /
    ``.lookml`` extension matches the file type it names (``*.view`` = ``*.view.lkml``,
    ``*.dashboard`` = ``*.dashboard.lookml``).
    """
    if pattern.startswith("/"):
        full = pattern.lstrip("/")
    else:
        base = str(Path(including_file).parent)
        full = pattern if base in ("", ".") else f"{base}/{pattern}"
        parts: list[str] = []
        for p in full.split("/"):
            if p == "..":
                if parts:
                    parts.pop()
            elif p not in ("", "."):
                parts.append(p)
        full = "/".join(parts)
    candidates = [full]
    if not full.endswith((".lkml", ".lookml")):
        candidates = [full + ".lkml", full + ".lookml"]
    regexes = [_include_regex(c) for c in candidates]
    return [f for f in files if any(r.match(f) for r in regexes)]


# --- YAML with line numbers -------------------------------------------------------------
class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records, for every mapping, the line of each key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            lines[str(key_node.value)] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_meta(value: Any) -> Any:  # dicts keep their str keys
    if isinstance(value, dict):
        return {
            k: _strip_meta(v)
            for k, v in value.items()
            if k not in ("__lines__", "__line__") and not str(k).startswith("__")
        }
    if isinstance(value, list):
        return [_strip_meta(v) for v in value]
    return value


def _yes(value: Any) -> bool:
    return str(value).lower() in ("yes", "true")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


# --- the loader -------------------------------------------------------------------------
class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = Project(root=root)
        self.files = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.suffix in (".lkml", ".lookml")
        )

    def error(self, file: str, line: int, element: str, message: str) -> None:
        self.project.errors.append(ElementError(file, line, element, message))

    def broken(self, f: Field, message: str) -> None:
        self.error(f.file, f.line, f.ref, message)
        self.project.broken.setdefault(f.ref, f"{f.file}:{f.line}: {message}")

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def substitute_constants(self, rel: str, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.project.constants:
                self.error(rel, _line_at(text, m.start()), "", f"unknown constant @{{{name}}}")
                return m.group(0)
            return self.project.constants[name]

        return re.sub(r"@\{(\w+)\}", repl, text)

    def parse_lkml(self, rel: str) -> tuple[dict[str, Any], str] | None:
        text = self.substitute_constants(rel, self.read(rel))
        try:
            return lkml.load(text), text
        except (SyntaxError, KeyError, TypeError, ValueError) as exc:  # lkml's parse errors
            msg = str(exc)
            m = re.search(r"line (\d+)", msg)
            self.error(rel, int(m.group(1)) if m else 1, "", f"LookML syntax error: {msg}")
            return None

    def load(self) -> Project:
        if "manifest.lkml" in self.files:
            self.load_manifest("manifest.lkml")
        models = [f for f in self.files if f.endswith(".model.lkml")]
        if not models:
            self.error(".", 0, "", "no *.model.lkml file in the project")
        included_views: list[str] = []
        included_dashboards: list[str] = []
        for rel in models:
            for f in self.load_model(rel):
                if f.endswith(".view.lkml") and f not in included_views:
                    included_views.append(f)
                elif f.endswith(".dashboard.lookml") and f not in included_dashboards:
                    included_dashboards.append(f)
        i = 0
        while i < len(included_views):  # a view file may include more view files
            for extra in self.load_views(included_views[i]):
                if extra not in included_views:
                    included_views.append(extra)
            i += 1
        for rel in self.files:
            if rel.endswith(".view.lkml") and rel not in included_views:
                self.error(rel, 1, "", "view file is not included by any model")
        for rel in included_dashboards:
            self.load_dashboards(rel)
        for rel in self.files:
            if rel.endswith(".dashboard.lookml") and rel not in included_dashboards:
                self.error(rel, 1, "", "dashboard file is not included by any model")
        self.check_explores()
        return self.project

    def load_manifest(self, rel: str) -> None:
        text = self.read(rel)
        try:
            data = lkml.load(text)
        except (SyntaxError, KeyError, TypeError, ValueError) as exc:
            self.error(rel, 1, "", f"LookML syntax error: {exc}")
            return
        for c in data.get("constants", []):
            self.project.constants[c["name"]] = str(c.get("value", ""))

    def load_model(self, rel: str) -> list[str]:
        parsed = self.parse_lkml(rel)
        if parsed is None:
            return []
        data, text = parsed
        src = _Source(text)
        name = Path(rel).name.removesuffix(".model.lkml")
        model = Model(
            name=name,
            file=rel,
            connection=_str(data.get("connection")),
            includes=list(data.get("includes", [])),
            week_start_day=str(data.get("week_start_day", "monday")),
        )
        if model.week_start_day != "monday":
            self.error(
                rel,
                src.line("week_start_day", model.week_start_day),
                "",
                "week_start_day other than monday is not supported yet",
            )
        if not model.connection:
            self.error(rel, 1, name, "model has no connection")
        for dg in data.get("datagroups", []):
            model.datagroups[dg["name"]] = dg
        self.project.models[name] = model
        resolved: list[str] = []
        for pattern in model.includes:
            pos = text.find(pattern)
            line = _line_at(text, pos) if pos >= 0 else 1
            if pattern.startswith("//"):
                self.error(rel, line, "", f"include {pattern!r}: remote projects are not supported")
                continue
            matched = resolve_include(pattern, rel, self.files)
            if not matched:
                self.error(rel, line, "", f"include {pattern!r} matches no file")
            resolved.extend(m for m in matched if m not in resolved)
        for e in data.get("explores", []):
            start, end = src.block("explore", e["name"])
            explore = Explore(
                name=e["name"],
                model=name,
                view_name=e.get("from", e.get("view_name", e["name"])),
                file=rel,
                line=_line_at(text, start),
                label=e.get("label"),
                sql_always_where=e.get("sql_always_where"),
            )
            for key in ("always_filter", "conditionally_filter", "access_filter", "extends"):
                if key in e:
                    self.error(
                        rel,
                        src.line(key, "", start, end) if False else explore.line,
                        e["name"],
                        f"explore {key} is not supported yet",
                    )
            for j in e.get("joins", []):
                jline = src.line("join", j["name"], start, end)
                join = Join(
                    name=j["name"],
                    view_name=j.get("from", j["name"]),
                    sql_on=j.get("sql_on"),
                    relationship=j.get("relationship", "many_to_one"),
                    type=j.get("type", "left_outer"),
                    file=rel,
                    line=jline,
                    required_joins=list(j.get("required_joins", [])),
                )
                if join.sql_on is None:
                    self.error(
                        rel,
                        jline,
                        f"{e['name']}.{j['name']}",
                        "join has no sql_on (foreign_key / sql_where are not supported)",
                    )
                if join.relationship not in (
                    "many_to_one",
                    "one_to_many",
                    "one_to_one",
                    "many_to_many",
                ):
                    self.error(
                        rel,
                        jline,
                        f"{e['name']}.{j['name']}",
                        f"unknown relationship {join.relationship!r}",
                    )
                if join.type not in ("left_outer", "inner", "full_outer", "cross"):
                    self.error(
                        rel, jline, f"{e['name']}.{j['name']}", f"unknown join type {join.type!r}"
                    )
                explore.joins[join.name] = join
            for agg in e.get("aggregate_tables", []):
                self.add_aggregate(model, explore, agg, src, start, end)
            model.explores[explore.name] = explore
        return resolved

    def add_aggregate(
        self,
        model: Model,
        explore: Explore,
        agg: dict[str, Any],
        src: _Source,
        start: int,
        end: int,
    ) -> None:
        rel = model.file
        line = src.line("aggregate_table", agg["name"], start, end)
        label = f"{explore.name}::{agg['name']}"
        queries = agg.get("queries", [])
        if len(queries) != 1:
            self.error(rel, line, label, "aggregate_table needs exactly one query: block")
            return
        query = queries[0]
        filters: dict[str, str] = {}
        for group in query.get("filters__all", []):
            for item in group:
                filters.update({str(k): str(v) for k, v in item.items()})
        table = AggregateTable(
            name=agg["name"],
            explore=explore.name,
            file=rel,
            line=line,
            dimensions=[str(d) for d in query.get("dimensions", [])],
            measures=[str(m) for m in query.get("measures", [])],
            filters=filters,
            timezone=_str(query.get("timezone")),
            materialization=dict(agg.get("materialization") or {}),
        )
        if not table.measures and not table.dimensions:
            self.error(rel, line, label, "aggregate_table query has no dimensions or measures")
        materialization = table.materialization
        if not materialization:
            self.error(rel, line, label, "aggregate_table needs a materialization: block")
        trigger = materialization.get("datagroup_trigger")
        if trigger is not None and trigger not in model.datagroups:
            self.error(rel, line, label, f"materialization names unknown datagroup {trigger!r}")
        explore.aggregate_tables.append(table)

    def load_views(self, rel: str) -> list[str]:
        """Load the views of one file; return the view files its own includes name."""
        parsed = self.parse_lkml(rel)
        if parsed is None:
            return []
        data, text = parsed
        src = _Source(text)
        more: list[str] = []
        for pattern in data.get("includes", []):
            pos = text.find(pattern)
            matched = resolve_include(pattern, rel, self.files)
            if not matched:
                line = _line_at(text, pos) if pos >= 0 else 1
                self.error(rel, line, "", f"include {pattern!r} matches no file")
            more.extend(m for m in matched if m.endswith(".view.lkml"))
        for v in data.get("views", []):
            start, end = src.block("view", v["name"])
            view = View(
                name=v["name"],
                file=rel,
                line=_line_at(text, start),
                sql_table_name=v.get("sql_table_name"),
                label=v.get("label"),
                raw=v,
            )
            if v["name"] in self.project.views:
                self.error(rel, view.line, v["name"], "view defined twice")
            if "derived_table" in v:
                self.error(rel, view.line, v["name"], "derived_table is not supported yet")
            if "extends" in v or "extends__all" in v:
                self.error(rel, view.line, v["name"], "view extends is not supported yet")
            if view.sql_table_name is None and "derived_table" not in v:
                view.sql_table_name = v["name"]
            self.project.views[view.name] = view
            for kind, items in (
                ("dimension", v.get("dimensions", [])),
                ("measure", v.get("measures", [])),
                ("filter", v.get("filters", [])),
                ("parameter", v.get("parameters", [])),
            ):
                for d in items:
                    line = src.line(kind, d["name"], start, end)
                    self.add_field(view, kind, d, rel, line)
            for g in v.get("dimension_groups", []):
                line = src.line("dimension_group", g["name"], start, end)
                self.add_group(view, g, rel, line)
        return more

    def add_field(self, view: View, kind: str, d: dict[str, Any], rel: str, line: int) -> None:
        ftype = str(d.get("type", "string" if kind != "measure" else "count"))
        f = Field(
            view=view.name,
            name=d["name"],
            category=kind,
            type=ftype,
            sql=d.get("sql"),
            file=rel,
            line=line,
            label=d.get("label"),
            description=d.get("description"),
            group_label=d.get("group_label"),
            value_format=d.get("value_format"),
            value_format_name=d.get("value_format_name"),
            primary_key=_yes(d.get("primary_key", "no")),
            hidden=_yes(d.get("hidden", "no")),
            datatype=d.get("datatype"),
            style=str(d.get("style", "classic")),
            raw=d,
        )
        if "tiers" in d:
            try:
                f.tiers = [float(t) for t in d["tiers"]]
            except ValueError:
                self.error(rel, line, f.ref, "tiers must be numbers")
        if "percentile" in d:
            f.percentile = float(d["percentile"])
        for entry in d.get("filters__all", []) or []:
            for cond in entry:
                for k, val in cond.items():
                    f.filters.append((k, str(val)))
        if kind == "measure" and ftype not in MEASURE_TYPES:
            self.broken(f, f"measure type {ftype!r} is not supported yet")
        if kind == "dimension" and ftype not in DIMENSION_TYPES:
            self.broken(f, f"dimension type {ftype!r} is not supported yet")
        if kind == "parameter":
            self.broken(f, "parameters are not supported yet")
        if kind == "filter":
            self.broken(f, "filter-only fields (filter:) are not supported yet")
        if any(_LIQUID.search(str(d.get(k) or "")) for k in ("sql", "html", "label", "link")):
            self.broken(f, "Liquid templates are not supported yet")
        if f.name in view.fields:
            self.error(rel, line, f.ref, "field defined twice")
        view.fields[f.name] = f

    def add_group(self, view: View, g: dict[str, Any], rel: str, line: int) -> None:
        gtype = str(g.get("type", "time"))
        if gtype != "time":
            self.error(
                rel,
                line,
                f"{view.name}.{g['name']}",
                f"dimension_group type {gtype!r} is not supported yet",
            )
            return
        frames = list(g.get("timeframes", DEFAULT_TIMEFRAMES))
        for tf in frames:
            if tf not in TIMEFRAMES:
                self.error(rel, line, f"{view.name}.{g['name']}", f"unknown timeframe {tf!r}")
                continue
            name = f"{g['name']}_{tf}"
            label = g.get("label") or " ".join(
                w[:1].upper() + w[1:] for w in g["name"].replace("_", " ").split()
            )
            tf_label = " ".join(w[:1].upper() + w[1:] for w in tf.replace("_", " ").split())
            sql = g.get("sql")
            view.fields[name] = tf_field = Field(
                view=view.name,
                name=name,
                category="dimension",
                type="time",
                sql=sql,
                file=rel,
                line=line,
                label=f"{label} {tf_label}",
                description=g.get("description"),
                group_label=g.get("group_label"),
                hidden=_yes(g.get("hidden", "no")),
                group=g["name"],
                timeframe=tf,
                datatype=g.get("datatype", "timestamp"),
                raw=g,
            )
            if sql and _LIQUID.search(sql):
                self.broken(tf_field, "Liquid templates are not supported yet")

    def load_dashboards(self, rel: str) -> None:
        text = self.read(rel)
        try:
            docs = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            self.error(rel, mark.line + 1 if mark else 1, "", f"YAML error: {exc}")
            return
        if not isinstance(docs, list):
            self.error(rel, 1, "", "a dashboard file is a YAML list of `- dashboard:` items")
            return
        for d in docs:
            if not isinstance(d, dict) or "dashboard" not in d:
                self.error(rel, 1, "", "item without a `dashboard:` key")
                continue
            self.add_dashboard(rel, d)

    def add_dashboard(self, rel: str, d: dict[str, Any]) -> None:
        name = str(d["dashboard"])
        dash = Dashboard(
            name=name,
            title=str(d.get("title", name)),
            file=rel,
            line=int(d.get("__line__", 1)),
            layout=str(d.get("layout", "newspaper")),
            description=_str(d.get("description")),
            refresh=_str(d.get("refresh")),
            raw=_strip_meta(d),
        )
        if dash.layout not in ("newspaper", "static", "tile", "grid"):
            self.error(rel, dash.line, name, f"unknown layout {dash.layout!r}")
        for f in d.get("filters", []) or []:
            fname = str(f.get("name", ""))
            dash.filters.append(
                DashboardFilter(
                    name=fname,
                    title=str(f.get("title", fname)),
                    type=str(f.get("type", "field_filter")),
                    default_value=""
                    if f.get("default_value") is None
                    else str(f.get("default_value")),
                    file=rel,
                    line=int(f.get("__line__", dash.line)),
                    model=_str(f.get("model")),
                    explore=_str(f.get("explore")),
                    field=_str(f.get("field")),
                    allow_multiple_values=_yes(f.get("allow_multiple_values", True)),
                    required=_yes(f.get("required", False)),
                    ui_config=_strip_meta(f.get("ui_config") or {}),
                    raw=_strip_meta(f),
                )
            )
        for e in d.get("elements", []) or []:
            ename = str(e.get("name", ""))
            line = int(e.get("__line__", dash.line))
            if not ename:
                self.error(rel, line, name, "element without a name")
                continue
            limit = e.get("limit")
            el = DashboardElement(
                name=ename,
                title=str(e.get("title", e.get("title_text", ename)) or ""),
                type=str(e.get("type", "looker_grid")),
                file=rel,
                line=line,
                model=_str(e.get("model")),
                explore=_str(e.get("explore")),
                fields=[str(x) for x in e.get("fields", []) or []],
                pivots=[str(x) for x in e.get("pivots", []) or []],
                fill_fields=[str(x) for x in e.get("fill_fields", []) or []],
                sorts=[str(x) for x in e.get("sorts", []) or []],
                limit=int(limit) if limit is not None else None,
                filters={
                    str(k): "" if v is None else str(v)
                    for k, v in _strip_meta(e.get("filters") or {}).items()
                },
                listen={str(k): str(v) for k, v in _strip_meta(e.get("listen") or {}).items()},
                row=int(e.get("row", 0) or 0),
                col=int(e.get("col", 0) or 0),
                width=int(e.get("width", 8) or 8),
                height=int(e.get("height", 6) or 6),
                note_text=_str(e.get("note_text")),
                title_text=_str(e.get("title_text")),
                subtitle_text=_str(e.get("subtitle_text")),
                body_text=_str(e.get("body_text")),
                refresh=_str(e.get("refresh")),
                raw=_strip_meta(e),
                lines=dict(e.get("__lines__", {})),
            )
            if any(el.name == other.name for other in dash.elements):
                self.error(rel, line, f"{name}/{ename}", "element name used twice")
            dash.elements.append(el)
        if name in self.project.dashboards:
            self.error(rel, dash.line, name, "dashboard defined twice")
        self.project.dashboards[name] = dash

    def check_explores(self) -> None:
        for model in self.project.models.values():
            for explore in model.explores.values():
                if explore.view_name not in self.project.views:
                    self.error(
                        explore.file,
                        explore.line,
                        explore.name,
                        f"explore's view {explore.view_name!r} is not defined",
                    )
                for join in explore.joins.values():
                    if join.view_name not in self.project.views:
                        self.error(
                            join.file,
                            join.line,
                            f"{explore.name}.{join.name}",
                            f"joined view {join.view_name!r} is not defined",
                        )


def load_project(path: str | Path | None = None) -> Project:
    """Load the Looker project at ``path`` (default: this repository's ``looker/``)."""
    root = Path(path) if path is not None else default_project_path()
    if not root.is_dir():
        raise FileNotFoundError(f"no Looker project at {root} (expected a folder with *.lkml)")
    return _Loader(root.resolve()).load()
