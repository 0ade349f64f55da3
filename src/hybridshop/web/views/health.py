"""Health endpoints for Cloud Run probes: liveness never depends on the API in another cloud.

Not /healthz: Cloud Run's front end reserves paths ending in z and never forwards them.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from hybridshop.web.api_client import ApiError, ApiUnavailable
from hybridshop.web.state import shop

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    """Liveness: the process serves requests. Restarting us would not fix a remote API."""
    return jsonify(status="ok")


@bp.get("/ready")
def ready() -> tuple[Response, int]:
    """Readiness/diagnostics: can we reach the API with our identity right now?"""
    try:
        shop().api.list_products(limit=1)
    except ApiUnavailable:
        return jsonify(status="unavailable", api="unreachable"), 503
    except ApiError as exc:
        return jsonify(status="unavailable", api=f"{exc.status} {exc.code}"), 503
    return jsonify(status="ok", api="ok"), 200
