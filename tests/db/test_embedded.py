"""The embedded PostgreSQL: logical WAL, loopback only, data survives a restart."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from hybridshop.db.embedded import EmbeddedPostgres, EmbeddedPostgresError, free_port


def test_server_settings(pg: EmbeddedPostgres) -> None:
    conn = psycopg2.connect(pg.dsn("postgres"))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('wal_level'), current_setting('listen_addresses'), version()"
        )
        wal_level, listen, version = cur.fetchone()
    conn.close()
    assert wal_level == "logical"
    assert listen == "127.0.0.1"
    assert version.startswith("PostgreSQL 18")


def test_restart_keeps_data_and_start_reuses_a_running_server(tmp_path: Path) -> None:
    server = EmbeddedPostgres(base_dir=tmp_path / "pg", port=free_port(), database="shop")
    dsn = server.start()
    try:
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (7)")
        conn.commit()
        conn.close()
        # a second handle on the same data directory reuses the running server, whatever port it asks
        again = EmbeddedPostgres(base_dir=tmp_path / "pg", port=free_port(), database="shop")
        assert again.start() == dsn
        server.stop()
        assert not server.is_running()
        assert server.start() == dsn
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM kept")
            assert cur.fetchall() == [(7,)]
        conn.close()
    finally:
        server.stop(mode="immediate")


def test_port_taken_is_a_clear_error(tmp_path: Path, pg: EmbeddedPostgres) -> None:
    other = EmbeddedPostgres(base_dir=tmp_path / "pg2", port=pg.port)
    with pytest.raises(EmbeddedPostgresError, match="--pg-port"):
        other.start()
