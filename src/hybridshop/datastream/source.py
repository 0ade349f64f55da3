"""Source side: prerequisites, the published tables' catalog, and the snapshot backfill.

Every failed prerequisite raises ``PrerequisiteError`` whose message is the fix to apply,
because a replicator that "does not work" without saying why is the main CDC complaint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import IO, Any

import psycopg2
from psycopg2 import sql

from hybridshop.datastream.typemap import ColumnType, TypeInfo, column_type
from hybridshop.db.replication import REPLICATED_TABLES, ensure_publication

log = logging.getLogger("hybridshop.datastream")


class PrerequisiteError(RuntimeError):
    """The source is not ready for logical replication; the message says what to run."""


@dataclass
class SourceColumn:
    name: str
    type_oid: int
    typmod: int
    is_key: bool
    ctype: ColumnType


@dataclass
class SourceTable:
    relid: int
    schema: str
    name: str
    replica_identity: str
    columns: list[SourceColumn]
    row_filter: str | None = None  # the publication's WHERE (PostgreSQL 15+), SQL text

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class TypeCatalog:
    """Type OIDs -> ``TypeInfo``, read from ``pg_type`` on demand (new columns bring new OIDs)."""

    def __init__(self) -> None:
        self._known: dict[int, TypeInfo] = {}

    def get(self, conn: Any, oids: set[int]) -> dict[int, TypeInfo]:
        missing = [o for o in oids if o not in self._known]
        if missing:
            with conn.cursor() as cur:
                # A domain maps as its base type (through domains over domains), with the
                # domain's typmod (numeric(10,2) in CREATE DOMAIN) where the column has none.
                cur.execute(
                    "WITH RECURSIVE d(oid, base, typmod) AS ("
                    " SELECT oid, oid, -1 FROM pg_type WHERE oid = ANY(%s::oid[])"
                    " UNION ALL SELECT d.oid, t.typbasetype,"
                    " CASE WHEN d.typmod = -1 THEN t.typtypmod ELSE d.typmod END"
                    " FROM d JOIN pg_type t ON t.oid = d.base AND t.typtype = 'd')"
                    " SELECT d.oid, b.typname, b.typcategory, e.typname, d.typmod FROM d"
                    " JOIN pg_type b ON b.oid = d.base AND b.typtype <> 'd'"
                    " LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'",
                    (missing,),
                )
                for oid, name, category, elem, typmod in cur.fetchall():
                    self._known[int(oid)] = TypeInfo(name, category, elem, int(typmod))
            conn.rollback()
        return {o: self._known.get(o, TypeInfo("unknown", "U")) for o in oids}

    def column_type(self, conn: Any, oid: int, typmod: int) -> ColumnType:
        return column_type(self.get(conn, {oid})[oid], typmod)


def check_prerequisites(conn: Any, publication: str, *, create_publication: bool) -> None:
    """wal_level, replication privilege, publication (created if allowed). Commits."""
    with conn.cursor() as cur:
        cur.execute("SHOW wal_level")
        (wal_level,) = cur.fetchone()
        if wal_level != "logical":
            raise PrerequisiteError(
                f"wal_level is '{wal_level}', logical replication needs 'logical'. Fix: run "
                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (on Amazon RDS: "
                "set rds.logical_replication = 1 in the DB parameter group and reboot)."
            )
        cur.execute(
            "SELECT current_user, rolsuper OR rolreplication OR coalesce(pg_has_role(current_user,"
            " (SELECT oid FROM pg_roles WHERE rolname = 'rds_replication'), 'member'), false) "
            "FROM pg_roles WHERE rolname = current_user"
        )
        user, can_replicate = cur.fetchone()
        if not can_replicate:
            raise PrerequisiteError(
                f'role {user!r} may not use replication. Fix: ALTER ROLE "{user}" REPLICATION; '
                f'(on Amazon RDS: GRANT rds_replication TO "{user}";)'
            )
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        exists = cur.fetchone() is not None
    if not exists:
        tables = ", ".join(f"public.{t}" for t in REPLICATED_TABLES)
        fix = f'CREATE PUBLICATION "{publication}" FOR TABLE {tables};'
        if not create_publication:
            raise PrerequisiteError(f"publication {publication!r} does not exist. Fix: {fix}")
        try:
            ensure_publication(conn, publication)
            conn.commit()
        except psycopg2.Error as exc:
            conn.rollback()
            raise PrerequisiteError(
                f"publication {publication!r} does not exist and {user!r} cannot create it "
                f"({exc.pgerror or exc}). Fix: as the tables' owner run {fix}"
            ) from exc
    conn.rollback()


def key_columns(conn: Any, relid: int) -> set[str]:
    """The columns that identify a row, decided from the catalog by one rule that backfill
    and stream share: the replica identity index (REPLICA IDENTITY USING INDEX), else the
    primary key (DEFAULT and FULL alike: FULL only widens what the old tuple carries), else
    none (a key-less table: FULL gives whole-row deletes, NOTHING / no key only inserts)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.attname FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
            "WHERE c.oid = %s AND CASE WHEN c.relreplident = 'i' THEN i.indisreplident "
            "ELSE i.indisprimary END",
            (relid,),
        )
        keys = {str(r[0]) for r in cur.fetchall()}
    conn.rollback()
    return keys


def published_tables(
    conn: Any, publication: str, types: TypeCatalog, *, only: set[str] | None = None
) -> list[SourceTable]:
    """The publication's tables with exactly the published columns (PostgreSQL 15+ column
    lists; PostgreSQL 18 stored generated columns when ``publish_generated_columns``), row
    filters, keys (``key_columns``) and mapped types; checks SELECT. ``only``: these
    ``schema.table`` names."""
    with conn.cursor() as cur:
        columns_sql = "pt.attnames" if conn.server_version >= 150000 else "NULL::name[]"
        filter_sql = "pt.rowfilter" if conn.server_version >= 150000 else "NULL::text"
        cur.execute(
            f"SELECT c.oid, pt.schemaname, pt.tablename, c.relreplident, "
            f"has_table_privilege(c.oid, 'SELECT'), {columns_sql}, {filter_sql} "
            "FROM pg_publication_tables pt "
            "JOIN pg_namespace n ON n.nspname = pt.schemaname "
            "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
            "WHERE pt.pubname = %s ORDER BY 2, 3",
            (publication,),
        )
        rows = cur.fetchall()
        if not rows:
            raise PrerequisiteError(
                f"publication {publication!r} publishes no table. Fix: ALTER PUBLICATION "
                f'"{publication}" ADD TABLE <schema>.<table>;'
            )
        tables: list[SourceTable] = []
        for relid, schema, name, ident, can_select, attnames, rowfilter in rows:
            if only is not None and f"{schema}.{name}" not in only:
                continue
            qualified = f'"{schema}"."{name}"'
            if not can_select:
                cur.execute("SELECT current_user")
                (user,) = cur.fetchone()
                raise PrerequisiteError(
                    f"role {user!r} cannot read {schema}.{name}. Fix: GRANT USAGE ON SCHEMA "
                    f'"{schema}" TO "{user}"; GRANT SELECT ON {qualified} TO "{user}";'
                )
            cur.execute(
                "SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
                "AND (%s::name[] IS NULL AND a.attgenerated = '' OR a.attname = ANY(%s::name[])) "
                "ORDER BY a.attnum",
                (relid, attnames, attnames),
            )
            cols = cur.fetchall()
            keys = key_columns(conn, int(relid))
            if not keys and ident != "f":
                log.warning(
                    "table %s.%s has no primary key or replica identity: only its INSERTs are "
                    "replicated (append-only, as Datastream does); PostgreSQL refuses UPDATE "
                    "and DELETE on it while the publication publishes them. To replicate "
                    "them: ALTER TABLE %s ADD PRIMARY KEY (...); or REPLICA IDENTITY FULL",
                    schema,
                    name,
                    qualified,
                )
            info = types.get(conn, {int(c[1]) for c in cols})
            columns = [
                SourceColumn(
                    n, int(oid), int(mod), n in keys, column_type(info[int(oid)], int(mod))
                )
                for n, oid, mod in cols
            ]
            tables.append(SourceTable(int(relid), schema, name, ident, columns, rowfilter))
    conn.rollback()
    return tables


def publication_table_names(conn: Any, publication: str) -> set[str]:
    """``schema.table`` of every table the publication publishes now (cheap; polled)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s",
            (publication,),
        )
        names = {str(r[0]) for r in cur.fetchall()}
    conn.rollback()
    return names


def copy_sql(table: SourceTable, pages: tuple[int, int | None] | None = None) -> sql.Composable:
    """COPY of one table as CSV (NULL as \\N): the published columns and rows (column list,
    row filter), arrays as ``to_json`` (the stream writes the same JSON, see
    ``typemap.pg_array_to_json``), timestamptz as UTC timestamps (``ColumnType.copied_as_utc``).

    ``pages`` = (first, end) restricts the COPY to heap pages [first, end) (end None = to the
    end of the table) with a TID range scan, so a table can be copied in chunks that DuckDB
    loads while PostgreSQL produces the next one.
    """
    exprs: list[sql.Composable] = []
    for col in table.columns:
        ident = sql.Identifier(col.name)
        if col.ctype.is_array:
            exprs.append(sql.SQL("to_json({})").format(ident))
        elif col.ctype.copied_as_utc:
            exprs.append(sql.SQL("({} AT TIME ZONE 'UTC')").format(ident))
        else:
            exprs.append(ident)
    conditions: list[sql.Composable] = []
    if table.row_filter:
        # the publication's row filter, as PostgreSQL deparses it in pg_publication_tables
        conditions.append(sql.SQL("(") + sql.SQL(table.row_filter) + sql.SQL(")"))
    if pages is not None:
        first, end = pages
        if first > 0:
            conditions.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({first},0)")))
        if end is not None:
            conditions.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({end},0)")))
    target: sql.Composable
    if conditions or any(c.ctype.is_array or c.ctype.copied_as_utc for c in table.columns):
        where = (
            sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
        )
        target = sql.SQL("(SELECT {} FROM ONLY {}{})").format(
            sql.SQL(", ").join(exprs), sql.Identifier(table.schema, table.name), where
        )
    else:
        target = sql.SQL("{} ({})").format(
            sql.Identifier(table.schema, table.name),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns),
        )
    return sql.SQL("COPY {} TO STDOUT WITH (FORMAT csv, NULL '\\N')").format(target)


def copy_table(
    conn: Any, table: SourceTable, out: IO[bytes], pages: tuple[int, int | None] | None = None
) -> None:
    """Stream one table's COPY (or a page range of it) into ``out``, inside the caller's
    snapshot transaction. ``out`` should be a real file: psycopg2 calls ``write`` per row."""
    with conn.cursor() as cur:
        cur.copy_expert(copy_sql(table, pages).as_string(conn), out)


def lock_tables(conn: Any, tables: list[SourceTable]) -> None:
    """ACCESS SHARE locks until the snapshot transaction ends, as pg_dump takes: they let
    writes through but keep VACUUM FULL, CLUSTER, TRUNCATE and ALTER TABLE out, which would
    move rows between the page ranges of a chunked copy (those rewrites are not MVCC-safe)."""
    if not tables:
        return
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("LOCK TABLE ONLY {} IN ACCESS SHARE MODE").format(
                sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in tables)
            )
        )


def page_ranges(conn: Any, table: SourceTable, chunk_pages: int) -> list[tuple[int, int | None]]:
    """Heap page ranges covering the whole table, ``chunk_pages`` each, the last one open-ended
    (rows added after the size was read are then still covered). One range, i.e. a plain
    COPY, for small tables and before PostgreSQL 14 (no TID range scan: every chunk would
    read the whole table)."""
    if chunk_pages <= 0 or conn.server_version < 140000:
        return [(0, None)]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_relation_size(%s::oid) / current_setting('block_size')::bigint",
            (table.relid,),
        )
        (pages,) = cur.fetchone()
    starts = range(0, max(int(pages), 1), chunk_pages)
    return [(s, s + chunk_pages if s + chunk_pages < pages else None) for s in starts]
