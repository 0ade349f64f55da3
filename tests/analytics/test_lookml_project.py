"""LookML validity: our project validates; planted errors each give their file:line message;
unsupported features are errors naming file, line and element while the rest still compiles;
include patterns resolve as Looker resolves them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridshop.analytics.lookml import (
    Project,
    UnsupportedError,
    compile_element,
    default_project_path,
    load_project,
    validate_project,
)
from hybridshop.analytics.lookml.project import resolve_include
from hybridshop.cli.main import app


def test_our_project_validates(project: Project) -> None:
    assert project.errors == []
    assert validate_project(project) == []
    assert project.constants["bigquery_dataset"] == "hybridshop"
    assert project.models["hybridshop"].connection == "hybridshop_bigquery"


def test_validate_cli_passes_on_our_project() -> None:
    result = CliRunner().invoke(app, ["dashboards", "validate"])
    assert result.exit_code == 0, result.output
    assert "3 dashboard(s)" in result.output


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "looker"
    shutil.copytree(default_project_path(), root)
    return root


def _edit(path: Path, old: str, new: str, count: int = 1) -> int:
    """Replace ``old`` (``count`` times) and return the 1-based line of the first edit."""
    text = path.read_text()
    assert old in text, old
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, count))
    return line


def _line_of(path: Path, needle: str, after: str | None = None) -> int:
    text = path.read_text()
    start = text.index(after) if after else 0
    return text[: text.index(needle, start)].count("\n") + 1


def _messages(root: Path) -> list[str]:
    return [str(e) for e in validate_project(load_project(root))]


def test_planted_unknown_field(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    dash = root / "dashboards" / "sales.dashboard.lookml"
    _edit(dash, "fields: [public_orders.revenue]", "fields: [public_orders.revenu]")
    line = _line_of(dash, "fields: [public_orders.revenu]")
    msgs = _messages(root)
    assert msgs == [
        f"dashboards/sales.dashboard.lookml:{line}: sales/revenue: unknown field "
        "public_orders.revenu: view 'public_orders' has no such field"
    ]


def test_planted_bad_join(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    model = root / "hybridshop.model.lkml"
    _edit(model, "= ${public_products.id} ;;", "= ${public_products.idd} ;;")
    join_line = _line_of(model, "join: public_products")
    msgs = _messages(root)
    assert msgs, "a broken sql_on must be reported"
    assert all(m.startswith(f"hybridshop.model.lkml:{join_line}: ") for m in msgs), msgs
    assert "unknown field public_products.idd" in msgs[0]


def test_planted_join_to_unknown_view(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    model = root / "hybridshop.model.lkml"
    _edit(model, "  join: public_orders {", "  join: public_orderz {")
    line = _line_of(model, "join: public_orderz")
    msgs = _messages(root)
    assert (
        f"hybridshop.model.lkml:{line}: public_products.public_orderz: joined view "
        "'public_orderz' is not defined"
    ) in msgs


def test_planted_bad_filter_expression(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    dash = root / "dashboards" / "catalog.dashboard.lookml"
    _edit(dash, 'public_orders.id: "NULL"', 'public_orders.id: "five"')
    line = _line_of(dash, "filters:", after="name: unsold_listings")
    msgs = _messages(root)
    assert msgs == [
        f"dashboards/catalog.dashboard.lookml:{line}: catalog/unsold_listings: bad filter "
        "expression for public_orders.id: 'five': 'five' is not a number filter"
    ]


def test_planted_bad_dashboard_filter_default(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    dash = root / "dashboards" / "sales.dashboard.lookml"
    _edit(dash, "default_value: 180 days", "default_value: 180 dayz")
    line = _line_of(dash, "- name: date")
    msgs = _messages(root)
    assert msgs and all(
        m.startswith(f"dashboards/sales.dashboard.lookml:{line}: ") for m in msgs
    ), msgs
    assert "(dashboard filter 'date')" in msgs[0]


def test_planted_bad_listen_target(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    dash = root / "dashboards" / "catalog.dashboard.lookml"
    text = dash.read_text()
    start = text.index("name: items_listed")
    listen = text.index("listen:", start)
    line = text[:listen].count("\n") + 1
    end = text.index("category: public_products.category", listen)
    dash.write_text(
        text[:end]
        + "category: public_products.kategory"
        + text[end + len("category: public_products.category") :]
    )
    msgs = _messages(root)
    assert msgs == [
        f"dashboards/catalog.dashboard.lookml:{line}: catalog/items_listed: listen 'category': "
        "unknown field 'public_products.kategory': view 'public_products' has no such field"
    ]


def test_planted_syntax_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    view = root / "views" / "public_orders.view.lkml"
    _edit(view, "  dimension: currency {", "  dimension: currency {{")
    msgs = _messages(root)
    assert any(
        m.startswith("views/public_orders.view.lkml:") and "syntax error" in m for m in msgs
    ), msgs


def test_planted_include_matching_nothing(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    model = root / "hybridshop.model.lkml"
    line = _edit(
        model,
        'include: "/views/*.view.lkml"',
        'include: "/views/*.view.lkml"\ninclude: "/nothing/*.view"',
    )
    assert (
        f"hybridshop.model.lkml:{line + 1}: include '/nothing/*.view' matches no file"
        in _messages(root)
    )


def test_unsupported_features_are_errors_and_the_rest_renders(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    view = root / "views" / "public_orders.view.lkml"
    _edit(
        view,
        "  dimension: channel {\n    type: string\n    sql: ${TABLE}.channel ;;",
        "  dimension: channel {\n    type: string\n    sql: {% if x %}${TABLE}.channel{% endif %} ;;",
    )
    liquid_line = _line_of(view, "dimension: channel")
    _edit(
        view,
        "  measure: count {",
        "  parameter: metric {\n    type: string\n  }\n\n  measure: count {",
    )
    param_line = _line_of(view, "parameter: metric")
    dash = root / "dashboards" / "sales.dashboard.lookml"
    _edit(
        dash,
        "    fields: [public_orders.purchased_hour_of_day, public_orders.count]",
        "    fields: [public_orders.channel, public_orders.count]",
    )
    _edit(
        dash,
        "    fields: [public_orders.average_order_value]",
        "    fields: [public_orders.average_order_value]\n    dynamic_fields:\n"
        "    - table_calculation: double\n      expression: ${public_orders.average_order_value} * 2",
    )
    calc_line = _line_of(dash, "dynamic_fields:")
    project = load_project(root)
    errors = [str(e) for e in project.errors]
    assert (
        f"views/public_orders.view.lkml:{liquid_line}: public_orders.channel: Liquid "
        "templates are not supported yet"
    ) in errors
    assert (
        f"views/public_orders.view.lkml:{param_line}: public_orders.metric: parameters are "
        "not supported yet"
    ) in errors

    hour = compile_element(project, "sales", "orders_by_hour")
    assert not hour.ok
    assert isinstance(hour.errors[0], UnsupportedError)
    assert hour.errors[0].file == "dashboards/sales.dashboard.lookml"
    assert hour.errors[0].element == "sales/orders_by_hour"
    assert "Liquid" in hour.errors[0].message

    aov = compile_element(project, "sales", "average_order_value")
    assert [str(e) for e in aov.errors] == [
        f"dashboards/sales.dashboard.lookml:{calc_line}: sales/average_order_value: table "
        "calculations and custom fields (dynamic_fields) are not supported"
    ]
    # every other tile still compiles
    for el in project.dashboards["sales"].elements:
        if el.name not in ("orders_by_hour", "average_order_value"):
            assert compile_element(project, "sales", el.name).errors == [], el.name


def test_liquid_in_an_element_filter_is_unsupported(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    dash = root / "dashboards" / "catalog.dashboard.lookml"
    _edit(dash, 'public_orders.id: "NULL"', "public_orders.id: \"{{ _user_attributes['x'] }}\"")
    line = _line_of(dash, "filters:", after="name: unsold_listings")
    compiled = compile_element(load_project(root), "catalog", "unsold_listings")
    assert [str(e) for e in compiled.errors] == [
        f"dashboards/catalog.dashboard.lookml:{line}: catalog/unsold_listings: Liquid templates "
        "in filters are not supported"
    ]
    assert isinstance(compiled.errors[0], UnsupportedError)


def test_validate_cli_fails_with_file_line(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    dash = root / "dashboards" / "sales.dashboard.lookml"
    _edit(dash, "fields: [public_orders.count]", "fields: [public_orders.nope]")
    result = CliRunner().invoke(app, ["dashboards", "validate", "--project", str(root)])
    assert result.exit_code == 1
    assert "dashboards/sales.dashboard.lookml:" in result.output
    assert "unknown field public_orders.nope" in result.output


def test_dashboard_file_not_included_is_reported(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "extra").mkdir()
    (root / "extra" / "x.dashboard.lookml").write_text("- dashboard: x\n  title: X\n")
    assert "extra/x.dashboard.lookml:1: dashboard file is not included by any model" in (
        _messages(root)
    )


@pytest.mark.parametrize(
    ("pattern", "including", "expected"),
    [
        ("/views/*.view.lkml", "m.model.lkml", ["views/a.view.lkml", "views/b.view.lkml"]),
        ("*.view", "m.model.lkml", ["top.view.lkml"]),  # no extension: the file type
        ("views/*.view", "m.model.lkml", ["views/a.view.lkml", "views/b.view.lkml"]),
        (
            "/**/*.view.lkml",
            "m.model.lkml",
            ["top.view.lkml", "views/a.view.lkml", "views/b.view.lkml", "views/sub/c.view.lkml"],
        ),
        (
            "/views/**/*.view",
            "m.model.lkml",
            ["views/a.view.lkml", "views/b.view.lkml", "views/sub/c.view.lkml"],
        ),
        ("../views/a.view.lkml", "models/m.model.lkml", ["views/a.view.lkml"]),  # relative
        ("*.dashboard", "m.model.lkml", ["d.dashboard.lookml"]),
        ("/views/a.view.lkml", "models/m.model.lkml", ["views/a.view.lkml"]),
    ],
)
def test_include_patterns(pattern: str, including: str, expected: list[str]) -> None:
    files = [
        "top.view.lkml",
        "d.dashboard.lookml",
        "views/a.view.lkml",
        "views/b.view.lkml",
        "views/sub/c.view.lkml",
        "models/m.model.lkml",
    ]
    assert resolve_include(pattern, including, files) == expected


def test_element_layout_and_keys(project: Project) -> None:
    el = project.dashboards["sales"].element("revenue_over_time")
    assert (el.row, el.col, el.width, el.height) == (3, 0, 16, 8)
    assert el.type == "looker_line"
    assert el.listen == {
        "date": "public_orders.purchased_date",
        "category": "public_products.category",
    }
    assert el.raw["y_axes"][1]["orientation"] == "right"  # vis keys are kept
    f = project.dashboards["sales"].filter("category")
    assert f is not None and f.type == "field_filter" and f.field == "public_products.category"


def test_view_files_can_include_view_files(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    model = root / "hybridshop.model.lkml"
    _edit(model, 'include: "/views/*.view.lkml"', 'include: "/views/public_orders.view.lkml"')
    view = root / "views" / "public_orders.view.lkml"
    view.write_text('include: "public_products.view.lkml"\n' + view.read_text())
    project = load_project(root)
    assert project.errors == []
    assert set(project.views) == {"public_orders", "public_products"}
    assert validate_project(project) == []


def test_is_deleted_rows_excluded_where_the_layout_has_them(tmp_path: Path) -> None:
    """A table without a primary key: Datastream's merge mode appends rows with
    datastream_metadata.is_deleted. The documented recipe (sql_always_where on the explore)
    excludes them; our own tables have keys, so Datastream deletes rows and has no column."""
    import duckdb

    from hybridshop.analytics.lookml import compile_query, run_query

    root = _copy(tmp_path)
    model = root / "hybridshop.model.lkml"
    _edit(
        model,
        '  label: "Orders"\n',
        '  label: "Orders"\n  sql_always_where: NOT COALESCE(${TABLE}.datastream_metadata'
        ".is_deleted, FALSE) ;;\n",
    )
    project = load_project(root)
    assert validate_project(project) == []
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE public_orders (id BIGINT, product_id BIGINT, price DECIMAL(10,2), "
        "currency VARCHAR, purchased_at TIMESTAMP, buyer_ref VARCHAR, channel VARCHAR, "
        "idempotency_key VARCHAR, datastream_metadata STRUCT(uuid VARCHAR, source_timestamp "
        "BIGINT, is_deleted BOOLEAN))"
    )
    con.execute(
        "INSERT INTO public_orders VALUES "
        "(1, 1, 10, 'EUR', '2024-01-01', NULL, 'api', NULL, {'uuid': 'a', 'source_timestamp': 1,"
        " 'is_deleted': false}), "
        "(2, 2, 20, 'EUR', '2024-01-01', NULL, 'api', NULL, {'uuid': 'b', 'source_timestamp': 2,"
        " 'is_deleted': true}), "
        "(3, 3, 40, 'EUR', '2024-01-01', NULL, 'api', NULL, {'uuid': 'c', 'source_timestamp': 3,"
        " 'is_deleted': NULL})"
    )
    compiled = compile_query(
        project, "hybridshop", "public_orders", ["public_orders.count", "public_orders.revenue"]
    )
    assert compiled.ok, compiled.errors
    assert "is_deleted" in compiled.bigquery_sql
    assert run_query(compiled, con).rows == [
        {"public_orders.count": 2, "public_orders.revenue": 50}
    ]
