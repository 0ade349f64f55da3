"""``hybridshop web``: serve the shop locally against an API that is already running.

``hybridshop up`` starts everything at once; this command is for working on the shop alone
(for example against ``hybridshop api`` in another terminal).
"""

from __future__ import annotations

import typer

from hybridshop.settings import (
    DEFAULT_API_PORT,
    DEFAULT_HOST,
    DEFAULT_WEB_PORT,
    LOCAL_API_AUDIENCE,
)


def web(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Interface to listen on."),
    port: int = typer.Option(
        DEFAULT_WEB_PORT, "--port", "-p", envvar="HYBRIDSHOP_WEB_PORT", help="Port (0 = any free)."
    ),
    api_url: str = typer.Option(
        f"http://{DEFAULT_HOST}:{DEFAULT_API_PORT}",
        "--api-url",
        envvar="API_BASE_URL",
        help="Base URL of the catalog API (the local gateway or API Gateway).",
    ),
    audience: str = typer.Option(
        "",
        "--audience",
        envvar="API_AUDIENCE",
        help=f"Send ID tokens for this audience (use {LOCAL_API_AUDIENCE} with `hybridshop api --auth local`).",
    ),
    metadata_url: str = typer.Option(
        "",
        "--metadata-url",
        envvar="METADATA_SERVER_URL",
        help="Metadata server for ID tokens (default: the local gateway's issuer, http://127.0.0.1:3001).",
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Print one line per request."),
) -> None:
    """Serve the web shop (Flask) on http://127.0.0.1:8080 until Ctrl-C.

    SHOP_ADMIN_TOKEN (environment) makes "Sell an item" ask for that seller token; without
    it catalog management is open to anyone who reaches the shop. SECRET_KEY keeps
    sessions across restarts.
    """
    import logging
    import os

    from rich.console import Console

    from hybridshop.web.server import make_web_server
    from hybridshop.web.settings import SettingsError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        server = make_web_server(
            api_url,
            host,
            port,
            audience=audience or None,
            metadata_url=metadata_url or None,
            secret_key=os.environ.get("SECRET_KEY") or None,
            admin_token=os.environ.get("SHOP_ADMIN_TOKEN") or None,
            access_log=access_log,
        )
    except SettingsError as exc:
        raise typer.BadParameter(str(exc)) from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    Console().print(f"[bold green]Shop[/] {server.url}  (API {api_url}) — Ctrl-C to stop")
    server.serve_forever()
