"""Local stand-in for AWS API Gateway (HTTP API, payload 2.0) + the Lambda runtime.

``from hybridshop.gateway import LocalGateway, GatewayConfig, JwtAuthorizerConfig``.
Exports are resolved lazily: every worker process imports this package, and a Lambda
environment must not pay for the HTTP server, PyJWT or cryptography at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hybridshop.gateway.authorizer import JwtAuthorizerConfig
    from hybridshop.gateway.server import GatewayConfig, LocalGateway

__all__ = ["GatewayConfig", "JwtAuthorizerConfig", "LocalGateway"]


def __getattr__(name: str) -> Any:
    if name in ("GatewayConfig", "LocalGateway"):
        from hybridshop.gateway import server

        return getattr(server, name)
    if name == "JwtAuthorizerConfig":
        from hybridshop.gateway import authorizer

        return authorizer.JwtAuthorizerConfig
    raise AttributeError(f"module 'hybridshop.gateway' has no attribute {name!r}")
