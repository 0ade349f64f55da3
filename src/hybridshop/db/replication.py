"""Source-side objects for change data capture: shared by the bootstrap Lambda (RDS, for GCP
Datastream) and the local replicator (``hybridshop.datastream``), so both replicate the same
tables through the same publication.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

# Tables the analytics need, in the order they are created.
REPLICATED_TABLES: tuple[str, ...] = ("products", "orders")
DEFAULT_SCHEMA = "public"
DEFAULT_PUBLICATION = "hybridshop_pub"
DEFAULT_SLOT = "hybridshop_slot"
# Alarm when a slot retains more WAL than this, as the deployed CloudWatch alarm on
# OldestReplicationSlotLag does (terraform: replication_lag_alarm_mb).
DEFAULT_WAL_ALARM_MB = 1024.0


def ensure_publication(
    conn: Any,
    publication: str = DEFAULT_PUBLICATION,
    tables: tuple[str, ...] = REPLICATED_TABLES,
    schema: str = DEFAULT_SCHEMA,
) -> bool:
    """Create ``publication`` FOR TABLE the given tables if missing; add tables it lacks.

    Returns True if anything changed. Runs in the caller's transaction (caller commits).
    """
    changed = False
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        qualified = [sql.Identifier(schema, t) for t in tables]
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                    sql.Identifier(publication), sql.SQL(", ").join(qualified)
                )
            )
            return True
        cur.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
            (publication,),
        )
        present = {(s, t) for s, t in cur.fetchall()}
        for table in tables:
            if (schema, table) not in present:
                cur.execute(
                    sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                        sql.Identifier(publication), sql.Identifier(schema, table)
                    )
                )
                changed = True
    return changed


def ensure_slot(conn: Any, slot: str = DEFAULT_SLOT, plugin: str = "pgoutput") -> bool:
    """Create a logical replication slot if missing (SQL interface, no exported snapshot).

    For the cloud bootstrap: Datastream takes over the slot and backfills by itself. The
    local replicator creates its slot over the replication protocol instead, because it needs
    the exported snapshot for a gap-free backfill. Returns True if the slot was created.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
        if row is not None:
            if row[0] != plugin:
                raise RuntimeError(
                    f"replication slot {slot!r} uses plugin {row[0]!r}, expected {plugin!r}: "
                    f"drop it with SELECT pg_drop_replication_slot('{slot}')"
                )
            return False
        cur.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (slot, plugin))
    return True
