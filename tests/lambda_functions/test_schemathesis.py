"""The served OpenAPI document says exactly what the API does: schemathesis generates valid
(positive) and invalid (negative) requests from ``/openapi.json`` as the gateway serves it,
sends them to the real handlers over HTTP, and fails on any 5xx, any status the document
does not list, any body that does not match its schema, and any invalid request accepted.

Bounded: a fixed seed (derandomised) and a fixed number of examples per operation and mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from hybridshop.gateway.server import GatewayConfig, LocalGateway

EXAMPLES = 40  # per operation and mode: 5 operations x 2 modes x 40 = 400 requests
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]


@pytest.fixture(scope="module")
def gateway(pg) -> Iterator[LocalGateway]:  # type: ignore[no-untyped-def]
    from conftest import create_database

    dsn = create_database(pg)
    gw = LocalGateway(
        GatewayConfig(port=0, env={"DATABASE_URL": dsn, "LOG_LEVEL": "WARNING"}, quiet=True)
    )
    gw.start()
    with requests.Session() as session:  # a few products so reads and purchases find some
        for n in range(5):
            made = session.post(
                gw.url + "/products", json={"name": f"Item {n}", "price": "2.50"}, timeout=30
            )
            assert made.status_code == 201
    yield gw
    gw.stop()


def _operations(gateway: LocalGateway) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(gateway.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_matches_its_served_document(gateway: LocalGateway, mode: GenerationMode) -> None:
    session = requests.Session()
    for operation in _operations(gateway):
        raw = operation.definition.raw
        if mode is GenerationMode.NEGATIVE and not (
            raw.get("parameters") or raw.get("requestBody")
        ):
            continue  # no input to make invalid (GET /categories)

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=gateway.url, session=session, checks=CHECKS, timeout=30)

        check()
