"""The ``hybridshop`` command: one entry point for the whole local stack and its tools.

Each sub-command lives in its own module and imports its heavy dependencies lazily, so
``hybridshop --help`` stays fast.
"""

from __future__ import annotations

import typer

from hybridshop.cli import api, bench, dashboards, db, replicate, simulate, up
from hybridshop.cli import deploy as deploy_cmd
from hybridshop.cli import package as package_cmd
from hybridshop.cli import web as web_cmd

app = typer.Typer(
    name="hybridshop",
    help=(
        "Hybrid-cloud ecommerce data platform (AWS Lambda + RDS, GCP Cloud Run + Datastream + "
        "BigQuery + Looker), runnable on one laptop with no cloud account and no Docker."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # never print local variables (DSNs, tokens) on a crash
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("up")(up.up)
app.command("api")(api.api)
app.command("web")(web_cmd.web)
app.add_typer(replicate.app, name="replicate")
app.add_typer(db.app, name="db")
app.command("package")(package_cmd.package)
app.add_typer(deploy_cmd.app, name="deploy")
app.command("simulate")(simulate.simulate)
app.add_typer(bench.app, name="bench")
app.add_typer(dashboards.app, name="dashboards")


def main() -> None:
    """Run the CLI; expected failures print one clear line instead of a traceback."""
    import psycopg2

    from hybridshop.db.connection import DatabaseConfigError, DatabaseUnavailable
    from hybridshop.db.embedded import EmbeddedPostgresError
    from hybridshop.db.migrate import MigrationError

    try:
        app()
    except (
        EmbeddedPostgresError,
        DatabaseConfigError,
        DatabaseUnavailable,
        MigrationError,
        psycopg2.OperationalError,
    ) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
