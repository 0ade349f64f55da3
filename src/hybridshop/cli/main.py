"""The ``hybridshop`` command: one entry point for the whole local stack and its tools.

Each sub-command lives in its own module and imports its heavy dependencies lazily, so
``hybridshop --help`` stays fast.
"""

from __future__ import annotations

import typer

from hybridshop.cli import api, bench, db, up

app = typer.Typer(
    name="hybridshop",
    help=(
        "Hybrid-cloud ecommerce data platform (AWS Lambda + RDS, GCP Cloud Run + Datastream + "
        "BigQuery + Looker), runnable on one laptop with no cloud account and no Docker."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("up")(up.up)
app.add_typer(db.app, name="db")
app.command("api")(api.api)
app.add_typer(bench.app, name="bench")
# -- more components register here (one line each) --
from hybridshop.cli import replicate  # noqa: E402

app.add_typer(replicate.app, name="replicate")
from hybridshop.cli import package as package_cmd  # noqa: E402

app.command("package")(package_cmd.package)
from hybridshop.cli import web as web_cmd  # noqa: E402

app.command("web")(web_cmd.web)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
