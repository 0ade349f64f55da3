"""Helpers for feeding the Lambda handlers real-shaped HTTP API payload-2.0 events."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridshop.gateway.context import LambdaContext, function_arn

DATA = Path(__file__).parent / "data"


@pytest.fixture
def aws_example_event() -> dict[str, Any]:
    """AWS's documented example event for HTTP APIs, payload format 2.0."""
    return json.loads((DATA / "aws_http_api_v2_example_event.json").read_text())


EventFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def make_event(aws_example_event: dict[str, Any]) -> EventFactory:
    """Build a 2.0 event for a route from AWS's example, the way API Gateway fills it in."""

    def build(
        route_key: str,
        path: str,
        *,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        path_parameters: dict[str, str] | None = None,
        claims: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        event = copy.deepcopy(aws_example_event)
        method = route_key.split(" ", 1)[0]
        event["routeKey"] = event["requestContext"]["routeKey"] = route_key
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        event["headers"] = {k.lower(): v for k, v in (headers or {}).items()}
        for key in ("cookies", "stageVariables", "queryStringParameters", "pathParameters", "body"):
            event.pop(key, None)  # API Gateway omits keys that have no value
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body is not None:
            event["body"] = body
        if claims is None:
            event["requestContext"].pop("authorizer")
        else:
            event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": []}}
        return event

    return build


@pytest.fixture
def lambda_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the handlers' settings and module-level connection at this test's database
    (after changing a variable, a test calls ``settings.reset()``: a real execution
    environment reads its settings once)."""
    from hybridshop.lambda_functions import settings
    from hybridshop.lambda_functions._http import DB

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("DB_AUTH_MODE", raising=False)
    monkeypatch.delenv("ALLOWED_CALLERS", raising=False)
    settings.reset()
    DB.reset()
    yield database_url
    DB.reset()
    settings.reset()


@pytest.fixture
def context() -> LambdaContext:
    """The same context class the local gateway hands to handlers."""
    return LambdaContext(
        function_name="test",
        memory_limit_in_mb=256,
        invoked_function_arn=function_arn("test", "eu-west-1", "123456789012"),
        aws_request_id=str(uuid.uuid4()),
        log_stream_name="2026/01/01/[$LATEST]test",
        deadline_epoch_ms=int(time.time() * 1000) + 10_000,
    )
