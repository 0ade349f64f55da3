"""LookML → BigQuery SQL → DuckDB: the Looker project of this repository, compiled offline.

The public contract (what the dashboard renderer, server, export and CLI build on):

``load_project(path) -> Project``
    Parses ``manifest.lkml`` (constants), every ``*.model.lkml`` with its ``include:``
    patterns resolved as Looker does, the views they include, and every
    ``*.dashboard.lookml`` (YAML). It never raises for a problem *inside* the project:
    problems are collected in ``Project.errors`` (``ElementError`` with file:line), and the
    rest of the project stays usable. It raises ``FileNotFoundError`` when ``path`` is not
    a directory.

``Project.dashboards: dict[str, Dashboard]``
    Keyed by the ``dashboard:`` name. A ``Dashboard`` has ``title``, ``description``,
    ``layout`` ("newspaper"), ``refresh``, ``filters: list[DashboardFilter]`` (``name``,
    ``title``, ``type``, ``default_value``, ``field``, ``explore``, ...), and
    ``elements: list[DashboardElement]`` in file order (``name``, ``title``, ``type``,
    ``row``/``col``/``width``/``height`` on the 24-column grid, ``note_text``,
    ``title_text``/``subtitle_text``/``body_text`` for text tiles, ``listen``,
    ``fields``, ``pivots``, ``sorts``, ``limit``, ``refresh`` and ``raw`` — every key of the
    element as written, vis settings included).

``compile_element(project, dashboard, element_name, filters=None, now=None, table_map=None)``
    ``filters`` maps dashboard filter names to Looker filter expressions; a missing name
    takes the filter's ``default_value``, an empty string means "is any value". Never
    raises for project problems: an element that cannot compile comes back with
    ``errors`` set and ``bigquery_sql``/``duckdb_sql`` ``None``; text tiles have no SQL and
    no errors. ``now`` (an aware datetime, default: the current UTC time) anchors relative
    date filters such as ``7 days``. ``table_map`` maps Datastream table names to local DuckDB
    tables (default: the same name in the default schema). Raises ``KeyError`` for an unknown
    dashboard or element name. ``compile_query(project, model, explore, fields, filters=…,
    sorts=…, limit=…, pivots=…, fill_fields=…)`` compiles an explore query the same way.

``CompiledQuery``
    ``bigquery_sql`` (what Looker would send to BigQuery), ``duckdb_sql`` (the same after
    sqlglot and our AST fixes), ``fields: list[FieldInfo]`` (``name`` = ``view.field`` =
    the row key, ``label``, ``category`` dimension|measure, ``type``, ``value_format``,
    ``value_format_name``, ``timeframe``, ``column``), ``pivots``, ``fill_fields``,
    ``sorts`` ([(field, descending)]), ``limit``, ``filters`` (field → expression applied),
    ``tables`` (the Datastream tables read), ``errors: list[ElementError]`` (an
    ``UnsupportedError`` for a feature we do not implement); ``ok`` is True when there is SQL
    to run. ``assumed_sql`` / ``assumes``: DuckDB SQL with the same rows when every
    ``JoinFact`` in ``assumes`` holds for the data (None / [] when no fact would help).

``run_query(compiled, warehouse, facts=None) -> QueryResult``
    ``warehouse`` is a DuckDB connection (its ``TimeZone`` is set to UTC) or a path to a
    DuckDB file (opened read-only). ``facts`` (a ``JoinFacts`` for the warehouse's current
    data) lets it run ``compiled.assumed_sql`` — the same rows by a cheaper plan — when the
    ``JoinFact``s it assumes hold (every order has its product: INNER instead of LEFT JOIN;
    no product has two orders: no ``COUNT(DISTINCT pk)``); ``QueryResult.sql`` is what ran. ``QueryResult.rows`` is a list of dicts keyed by
    field name, un-pivoted (long form: one row per dimension + pivot value), dates filled
    for ``fill_fields``; ``QueryResult.pivot_values`` lists the distinct pivot tuples;
    ``QueryResult.wide_rows()`` gives Looker's pivoted table form. Raises ``ValueError``
    when the compiled query has errors.

``ElementError(file, line, element, message)``
    ``str()`` is ``file:line: element: message``.
"""

from __future__ import annotations

from hybridshop.analytics.lookml.compiler import (
    CompiledQuery,
    FieldInfo,
    JoinFact,
    compile_element,
    compile_query,
)
from hybridshop.analytics.lookml.errors import (
    ElementError,
    FilterExpressionError,
    UnsupportedError,
)
from hybridshop.analytics.lookml.project import (
    Dashboard,
    DashboardElement,
    DashboardFilter,
    Project,
    default_project_path,
    load_project,
)
from hybridshop.analytics.lookml.runner import JoinFacts, QueryResult, run_query
from hybridshop.analytics.lookml.validate import validate_project

__all__ = [
    "CompiledQuery",
    "Dashboard",
    "DashboardElement",
    "DashboardFilter",
    "ElementError",
    "FieldInfo",
    "FilterExpressionError",
    "JoinFact",
    "JoinFacts",
    "Project",
    "QueryResult",
    "UnsupportedError",
    "compile_element",
    "compile_query",
    "default_project_path",
    "load_project",
    "run_query",
    "validate_project",
]
