"""``dashboards validate``: every problem of the project as file:line messages.

What it checks, without a database: the project loads (syntax, includes, views, joins,
unsupported features), every field of every explore compiles on its own (its SQL references
resolve, measures have what their type needs), every dashboard filter names a field that
exists and its default value parses, and every element compiles with the dashboard's
default filter values (fields, filters, sorts, pivots, fill_fields, listen), and every
``aggregate_table``'s query compiles (its materialization names a declared datagroup). The SQL of each
is also transpiled to DuckDB.
"""

from __future__ import annotations

from hybridshop.analytics.lookml.aggregates import source_query
from hybridshop.analytics.lookml.compiler import compile_element, compile_query
from hybridshop.analytics.lookml.errors import ElementError
from hybridshop.analytics.lookml.project import Project


def validate_project(project: Project) -> list[ElementError]:
    problems: list[ElementError] = list(project.errors)
    for model in project.models.values():
        for explore in model.explores.values():
            aliases = {explore.name: explore.view_name}
            aliases.update({j.name: j.view_name for j in explore.joins.values()})
            for alias, view_name in aliases.items():
                view = project.views.get(view_name)
                if view is None:
                    continue
                for f in view.fields.values():
                    if f.ref in project.broken or f.category in ("filter", "parameter"):
                        continue  # already reported where it is defined
                    compiled = compile_query(
                        project,
                        model.name,
                        explore.name,
                        [f"{alias}.{f.name}"],
                        where=(f.file, f.line, f"{explore.name}: {alias}.{f.name}"),
                    )
                    problems.extend(compiled.errors)
            for table in explore.aggregate_tables:
                # the aggregate's own query must compile (every field exists in the explore)
                problems.extend(source_query(project, explore, table).errors)
    for dash in project.dashboards.values():
        for df in dash.filters:
            label = f"{dash.name} filter {df.name}"
            if df.type == "field_filter":
                if not df.field:
                    problems.append(
                        ElementError(df.file, df.line, label, "field_filter needs field")
                    )
                    continue
                if df.explore and project.explore(df.model, df.explore) is None:
                    problems.append(
                        ElementError(df.file, df.line, label, f"unknown explore {df.explore!r}")
                    )
                    continue
                if project.field(df.field) is None:
                    problems.append(
                        ElementError(df.file, df.line, label, f"unknown field {df.field!r}")
                    )
            elif df.type not in ("date_filter", "string_filter", "number_filter"):
                problems.append(
                    ElementError(
                        df.file, df.line, label, f"filter type {df.type!r} is not supported"
                    )
                )
        for el in dash.elements:
            compiled = compile_element(project, dash.name, el.name)
            problems.extend(compiled.errors)
    seen: set[str] = set()
    unique = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    return unique
