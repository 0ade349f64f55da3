"""One element -> one tile, on a real DuckDB warehouse."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import duckdb

from hybridshop.analytics.lookml import Project
from hybridshop.analytics.render.tiles import MAX_ROWS_SHOWN, build_tile
from hybridshop.analytics.warehouse import create_tables, insert_orders

START = datetime(2024, 1, 1, 1, 0)


def test_a_tile_shows_up_to_its_elements_own_limit(project: Project) -> None:
    """Order changes per minute (limit: 1500) over 12 hours: all 720 minutes are drawn, the
    newest included, not the first 500 (Looker's default limit) only."""
    minutes = 720
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    create_tables(con)
    insert_orders(
        con,
        [
            (i, i, Decimal("1.00"), START, "api", START + timedelta(minutes=i))
            for i in range(minutes)
        ],
    )
    dashboard = project.dashboards["pipeline_health"]
    element = dashboard.element("order_changes_per_minute")
    assert element.limit == 1500 and minutes > MAX_ROWS_SHOWN
    tile = build_tile(
        project, dashboard, element, con, {"date": "2024-01-01 to 2024-01-02", "category": ""}
    )
    assert not tile.errors, tile.errors
    assert len(tile.rows) == minutes and not tile.truncated
    assert tile.spec is not None and len(tile.spec["data"]["values"]) == minutes
    newest = (START + timedelta(minutes=minutes - 1)).strftime("%Y-%m-%d %H:%M")
    assert newest in repr(tile.rows[-1])
    con.close()
