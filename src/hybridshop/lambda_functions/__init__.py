"""The AWS Lambda functions of the API, one module each, thin adapters over ``hybridshop.core``.

``FUNCTIONS`` is the single list of functions and their HTTP API routes: the local gateway
serves it, Terraform's routes are checked against it, and the OpenAPI document follows it.
Keep this module free of imports: it is loaded by every handler's cold start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # the AWS function's logical name
    module: str  # Python module holding ``handler(event, context)``
    routes: tuple[str, ...]  # HTTP API route keys ("METHOD /path/{param}")
    timeout_s: int = 10
    memory_mb: int = 256

    @property
    def handler(self) -> str:
        return f"{self.module}.handler"


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        name="GetProducts",
        module="hybridshop.lambda_functions.get_products",
        routes=("GET /products", "GET /products/{id}", "GET /categories"),
    ),
    FunctionSpec(
        name="GetItem",
        module="hybridshop.lambda_functions.get_item",
        routes=("POST /products/{id}/purchase",),
    ),
    FunctionSpec(
        name="AddProduct",
        module="hybridshop.lambda_functions.add_product",
        routes=("POST /products",),
    ),
)
