"""BigQuery itself: the metric views in ``analytics/bigquery/`` and running compiled tiles there.

The view files are BigQuery SQL queries (one ``SELECT`` per file, the view's name = the file
name) whose tables are written `` `${project}.${dataset}.public_orders` `` — the Terraform
analytics module renders them with ``templatefile()``. Locally the same files go through the
same transpile path as the dashboards (``lookml.transpile.to_duckdb``).

``BigQueryRunner`` runs a ``CompiledQuery``'s BigQuery SQL on a real dataset with
google-cloud-bigquery (the optional ``bigquery`` extra, credentials from the environment);
the tables are retargeted from the project's constants to ``PROJECT.DATASET``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridshop.analytics.lookml.compiler import CompiledQuery
from hybridshop.analytics.lookml.runner import shape
from hybridshop.analytics.lookml.transpile import to_duckdb

_TARGET = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]\.[A-Za-z0-9_]{1,1024}$")
_TABLE = re.compile(r"`[^`.]+\.[^`.]+\.([A-Za-z0-9_]+)`")


def views_dir() -> Path:
    """``analytics/bigquery/`` of this repository."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "analytics" / "bigquery"
        if candidate.is_dir() and any(candidate.glob("*.sql")):
            return candidate
    installed = Path(sys.prefix) / "share" / "hybridshop" / "analytics" / "bigquery"
    if any(installed.glob("*.sql")):
        return installed
    return Path.cwd() / "analytics" / "bigquery"


def load_views(folder: Path | None = None) -> dict[str, str]:
    """View name -> BigQuery SQL (still with ``${project}`` / ``${dataset}``)."""
    folder = folder or views_dir()
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.sql"))}


def render(sql: str, project: str, dataset: str) -> str:
    """What Terraform's ``templatefile(path, {project, dataset})`` produces."""
    return sql.replace("${project}", project).replace("${dataset}", dataset)


def view_to_duckdb(sql: str) -> str:
    """A view file as DuckDB SQL over the local warehouse's tables."""
    return to_duckdb(render(sql, "local", "local"))


def create_local_views(con: Any, folder: Path | None = None) -> list[str]:
    """Create every view of ``analytics/bigquery/`` in a (writable) local DuckDB."""
    names = []
    for name, sql in load_views(folder).items():
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {view_to_duckdb(sql)}')
        names.append(name)
    return names


def retarget(bigquery_sql: str, target: str) -> str:
    """Point every `` `project.dataset.table` `` of compiled SQL at ``PROJECT.DATASET``."""
    return _TABLE.sub(lambda m: f"`{target}.{m.group(1)}`", bigquery_sql)


@dataclass
class BigQueryRunner:
    """Runs compiled tiles on BigQuery. ``client`` is a ``google.cloud.bigquery.Client`` (or
    any object with its ``query(sql, job_config=...)`` method)."""

    target: str  # PROJECT.DATASET
    client: Any = None

    @classmethod
    def from_target(cls, target: str, client: Any = None) -> BigQueryRunner:
        if not _TARGET.match(target):
            raise ValueError(
                f"--bigquery {target!r}: expected PROJECT.DATASET (e.g. my-project.hybridshop)"
            )
        return cls(target=target, client=client)

    def _client(self) -> Any:
        if self.client is None:
            try:
                from google.cloud import bigquery
            except ImportError:
                raise RuntimeError(
                    "google-cloud-bigquery is not installed: pip install 'hybridshop[bigquery]'"
                ) from None
            self.client = bigquery.Client(project=self.target.split(".")[0])
        return self.client

    def sql(self, compiled: CompiledQuery) -> str:
        if compiled.bigquery_sql is None or compiled.errors:
            raise ValueError(f"{compiled.dashboard}/{compiled.element} has no SQL to run")
        return retarget(compiled.bigquery_sql, self.target)

    def run(self, compiled: CompiledQuery) -> list[dict[str, Any]]:
        """Rows as ``run_query`` shapes them (fill_fields, pivot limit)."""
        sql = self.sql(compiled)
        client = self._client()
        job_config = None
        try:
            from google.cloud import bigquery

            job_config = bigquery.QueryJobConfig(
                labels={"tool": "hybridshop-dashboards"}, use_legacy_sql=False
            )
        except ImportError:
            job_config = None
        job = client.query(sql, job_config=job_config)
        result = job.result()
        names = [f.name for f in result.schema]
        raw = [tuple(row.values()) for row in result]
        return shape(compiled, names, raw).rows
