"""Load shedding: with every environment of a function busy, a request waits in a short
bounded queue or is refused with API Gateway's throttling answer (429 + Retry-After) -- and
a refused request never reaches the function.

One environment per function makes "every environment busy" a state the test can hold:
``/b/sleep`` keeps it busy, ``/b/count`` counts the invocations that really ran."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import jsonschema
import requests

from .conftest import BEHAVIOURS, ECHO

TOO_MANY = {"message": "Too Many Requests"}


class Background:
    """One request on its own thread; ``.response`` once it finished."""

    def __init__(self, url: str) -> None:
        self.response: requests.Response | None = None
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self.thread.start()

    def _run(self, url: str) -> None:
        self.response = requests.get(url, timeout=30)

    def join(self) -> requests.Response:
        self.thread.join(timeout=30)
        assert self.response is not None, "the background request never finished"
        return self.response


def _wait_until(gateway: Any, **expected: int) -> None:
    """Poll the Behaviours pool's stats until they show ``expected`` (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        stats = gateway.health()["functions"]["Behaviours"]
        if all(stats[k] == v for k, v in expected.items()):
            return
        assert time.monotonic() < deadline, stats
        time.sleep(0.01)


def _count(gateway: Any) -> int:
    return int(requests.get(gateway.url + "/b/count", timeout=30).text)


def _assert_throttled(response: requests.Response) -> None:
    assert response.status_code == 429
    assert response.json() == TOO_MANY
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["apigw-requestid"]


def test_a_full_queue_is_shed_at_once_and_the_shed_request_never_runs(make_gateway) -> None:
    gateway, log = make_gateway(
        functions=(BEHAVIOURS, ECHO), concurrency=1, max_queue=1, max_wait_s=25.0
    )
    assert _count(gateway) == 1  # warm: one environment
    busy = Background(gateway.url + "/b/sleep?s=1.5")
    _wait_until(gateway, environments=1, idle=0)
    queued = Background(gateway.url + "/b/count")
    _wait_until(gateway, waiting=1)

    shed = requests.get(gateway.url + "/b/count", timeout=30)
    _assert_throttled(shed)
    assert busy.thread.is_alive()  # answered while the environment was still busy
    # another function is not throttled by this one's queue
    assert requests.get(gateway.url + "/echo", timeout=30).status_code == 200

    assert busy.join().text == "woke"
    assert queued.join().text == "2"  # the queued one ran, in its turn
    assert _count(gateway) == 3  # ... and the shed one never did
    stats = gateway.health()["functions"]["Behaviours"]
    assert stats["throttled"] == 1 and stats["max_waiting"] == 1
    lines = [json.loads(line) for line in log.wait_for('"status":429').splitlines() if "{" in line]
    throttled = [entry for entry in lines if entry.get("status") == 429]
    assert len(throttled) == 1
    assert throttled[0]["routeKey"] == "ANY /b/{what}"
    assert "throttled" in throttled[0]["integrationErrorMessage"]


def test_no_queue_sheds_as_soon_as_every_environment_is_busy(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), concurrency=1, max_queue=0)
    assert _count(gateway) == 1
    busy = Background(gateway.url + "/b/sleep?s=1.5")
    _wait_until(gateway, environments=1, idle=0)
    _assert_throttled(requests.get(gateway.url + "/b/count", timeout=30))
    assert busy.join().status_code == 200
    assert _count(gateway) == 2


def test_a_request_that_waits_past_the_bound_is_shed_not_run(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), concurrency=1, max_queue=8, max_wait_s=0.3)
    assert _count(gateway) == 1
    busy = Background(gateway.url + "/b/sleep?s=1.5")
    _wait_until(gateway, environments=1, idle=0)
    waited = requests.get(gateway.url + "/b/count", timeout=30)  # queued, then given up
    _assert_throttled(waited)
    assert busy.thread.is_alive()  # it gave up at the bound, not when the environment freed
    assert busy.join().status_code == 200
    assert _count(gateway) == 2
    assert gateway.health()["functions"]["Behaviours"]["waiting"] == 0


def test_a_wait_expected_to_exceed_the_bound_is_shed_without_queueing(make_gateway) -> None:
    """Once invocations are known to take ~1 s, a request finding the one environment busy
    would wait ~1 s: past a 0.5 s bound it is refused at once, though the queue has room."""
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), concurrency=1, max_queue=8, max_wait_s=0.5)
    assert requests.get(gateway.url + "/b/sleep?s=1", timeout=30).status_code == 200
    busy = Background(gateway.url + "/b/sleep?s=1.5")
    _wait_until(gateway, environments=1, idle=0)
    shed = requests.get(gateway.url + "/b/count", timeout=30)
    _assert_throttled(shed)
    assert gateway.health()["functions"]["Behaviours"]["waiting"] == 0  # never queued
    assert busy.join().status_code == 200
    assert _count(gateway) == 1


def test_waiting_within_the_bounds_is_served_in_turn(make_gateway) -> None:
    """A burst the queue holds is served, not shed: 12 requests, 2 environments, room for
    all 10 that wait."""
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), concurrency=2, max_queue=10, max_wait_s=25.0)
    assert _count(gateway) == 1
    burst = [Background(gateway.url + "/b/sleep?s=0.2") for _ in range(12)]
    assert [b.join().status_code for b in burst] == [200] * 12
    assert gateway.health()["functions"]["Behaviours"]["throttled"] == 0


def test_the_served_document_declares_the_429_on_every_route(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), concurrency=1, max_queue=0)
    document = requests.get(gateway.url + "/openapi.json", timeout=30).json()
    component = document["components"]["responses"]["TooManyRequests"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"]["429"] == {
                "$ref": "#/components/responses/TooManyRequests"
            }, (method, path)
    assert "Retry-After" in component["headers"]
    schema = component["content"]["application/json"]["schema"]
    jsonschema.validate(TOO_MANY, schema)
