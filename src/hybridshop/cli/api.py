"""``hybridshop api``: the three Lambda functions behind the local API Gateway.

Gets a database (``DATABASE_URL`` or the embedded server), hands it to the functions as
their ``DATABASE_URL`` and serves until Ctrl-C. Heavy imports stay inside the command so
``hybridshop --help`` stays fast.
"""

from __future__ import annotations

import os
from enum import StrEnum

import typer

from hybridshop import settings
from hybridshop.settings import DEFAULT_API_PORT, DEFAULT_HOST, DEFAULT_ISSUER_PORT

# Load shedding, the same options on `api` and `up`.
MAX_QUEUE_OPTION: int = typer.Option(
    settings.DEFAULT_MAX_QUEUE,
    "--max-queue",
    min=0,
    help="Requests that may wait per function when all its environments are busy; "
    "past that the gateway sheds load with 429 + Retry-After, as API Gateway throttles "
    "(0: shed as soon as all are busy).",
)
MAX_WAIT_OPTION: float = typer.Option(
    settings.DEFAULT_MAX_WAIT_S,
    "--max-wait",
    min=0.01,
    help="Longest a request waits for a busy function's environment before a 429, in s.",
)


class AuthMode(StrEnum):
    none = "none"
    local = "local"


FORWARDED_ENV = ("LOG_LEVEL", "POWERTOOLS_DEV", "POWERTOOLS_LOG_LEVEL")


def api(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on."),
    port: int = typer.Option(
        DEFAULT_API_PORT, "--port", "-p", envvar="HYBRIDSHOP_API_PORT", help="Port (0: any free)."
    ),
    concurrency: int = typer.Option(
        settings.DEFAULT_CONCURRENCY,
        "--concurrency",
        "-c",
        min=1,
        help="Execution environments per function.",
    ),
    max_queue: int = MAX_QUEUE_OPTION,
    max_wait: float = MAX_WAIT_OPTION,
    auth: AuthMode = typer.Option(
        AuthMode.none,
        "--auth",
        help="'local': JWT authorizer trusting the gateway's local issuer (like Google's on AWS).",
    ),
    jwt_issuer: str | None = typer.Option(
        None, "--jwt-issuer", help="JWT authorizer issuer URL (e.g. https://accounts.google.com)."
    ),
    jwt_audience: list[str] = typer.Option(
        [], "--jwt-audience", help="Accepted audience (repeatable)."
    ),
    jwks_url: str | None = typer.Option(
        None, "--jwks-url", help="JWKS URL (default: from the issuer's OpenID configuration)."
    ),
    allowed_caller: list[str] = typer.Option(
        [],
        "--allowed-caller",
        help="Token sub/email the functions accept (ALLOWED_CALLERS; repeatable).",
    ),
    issuer_port: int = typer.Option(
        DEFAULT_ISSUER_PORT,
        "--issuer-port",
        envvar="HYBRIDSHOP_ISSUER_PORT",
        help="With --auth local: port of the token issuer / metadata server stand-in, "
        "always on 127.0.0.1 (0: any free).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No access-log lines."),
) -> None:
    """Serve the API (API Gateway HTTP API + Lambda stand-in) on loopback until Ctrl-C."""
    from rich.console import Console
    from rich.table import Table

    from hybridshop.db.local import ensure_database
    from hybridshop.gateway.authorizer import JwtAuthorizerConfig
    from hybridshop.gateway.server import GatewayConfig, LocalGateway

    console = Console(stderr=True)
    if auth is AuthMode.local and jwt_issuer:
        raise typer.BadParameter("use either --auth local or --jwt-issuer, not both")
    if jwt_issuer and not jwt_audience:
        raise typer.BadParameter("--jwt-issuer needs at least one --jwt-audience")
    if (jwt_audience or jwks_url) and not jwt_issuer and auth is AuthMode.none:
        raise typer.BadParameter("--jwt-audience/--jwks-url need --jwt-issuer or --auth local")

    authorizer = None
    callers = list(allowed_caller)
    if auth is AuthMode.local:
        authorizer = JwtAuthorizerConfig.local(
            tuple(jwt_audience) or (settings.LOCAL_API_AUDIENCE,)
        )
        callers = callers or [settings.LOCAL_SERVICE_ACCOUNT]
    elif jwt_issuer:
        authorizer = JwtAuthorizerConfig(
            issuer=jwt_issuer, audiences=tuple(jwt_audience), jwks_url=jwks_url
        )

    database = ensure_database(stop_at_exit=True)
    env = {"DATABASE_URL": database.dsn, "DB_AUTH_MODE": "dsn"}
    env.update({k: os.environ[k] for k in FORWARDED_ENV if k in os.environ})
    if callers:
        env["ALLOWED_CALLERS"] = ",".join(callers)

    gateway = LocalGateway(
        GatewayConfig(
            host=host,
            port=port,
            env=env,
            concurrency=concurrency,
            max_queue=max_queue,
            max_wait_s=max_wait,
            authorizer=authorizer,
            local_issuer=auth is AuthMode.local,
            issuer_port=issuer_port,
            quiet=quiet,
        )
    )
    try:
        gateway.start()
    except OSError as exc:
        where = f"{host}:{port}" + (f" / 127.0.0.1:{issuer_port}" if auth is AuthMode.local else "")
        console.print(f"[red]cannot listen on {where}: {exc.strerror or exc}[/red]")
        raise typer.Exit(1) from None

    table = Table(title="hybridshop API (local API Gateway + Lambda)", show_header=False)
    table.add_row("API", gateway.url)
    table.add_row("OpenAPI", gateway.url + "/openapi.json")
    table.add_row("Health", gateway.url + "/_local/health")
    for spec in gateway.config.functions:
        table.add_row(spec.name, ", ".join(spec.routes))
    table.add_row("Database", "embedded PostgreSQL" if database.embedded else "DATABASE_URL")
    if gateway.issuer is not None:
        table.add_row("JWT issuer", gateway.issuer.issuer_url)
        table.add_row("Metadata (METADATA_SERVER_URL)", gateway.metadata_url)
        table.add_row("Audience", ", ".join(authorizer.audiences if authorizer else ()))
    elif authorizer is not None:
        table.add_row("JWT issuer", authorizer.issuer)
    if callers:
        table.add_row("Allowed callers", ", ".join(callers))
    console.print(table)
    console.print("Ctrl-C to stop.")
    gateway.serve_forever()
    console.print("API stopped.")
