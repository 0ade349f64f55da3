"""Lambda-like execution: warm environments, timeouts, errors, env vars, context, concurrency."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from .conftest import BEHAVIOURS, ECHO

INTERNAL_ERROR = {"message": "Internal Server Error"}


def test_module_state_stays_warm_across_invocations(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(ECHO,))
    with requests.Session() as session:
        bodies = [session.get(gateway.url + "/echo").json() for _ in range(4)]
    assert [b["calls"] for b in bodies] == [1, 2, 3, 4]
    assert {b["pid"] for b in bodies} == {bodies[0]["init_pid"]}  # one environment, imported once
    assert gateway.health()["functions"]["Echo"]["environments"] == 1


def test_context_object_and_lambda_environment(shared_gateway) -> None:
    gateway, _ = shared_gateway
    body = requests.get(gateway.url + "/echo", timeout=10).json()
    ctx, env = body["context"], body["env"]
    assert ctx["function_name"] == "Echo"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == 512
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:Echo"
    assert ctx["log_group_name"] == "/aws/lambda/Echo"
    assert ctx["log_stream_name"].endswith(env["AWS_LAMBDA_LOG_STREAM_NAME"][-32:])
    assert ctx["identity"] is None and ctx["client_context"] is None
    assert 4000 < ctx["remaining_ms"] <= 5000  # counts down from the 5 s function timeout
    assert len(ctx["aws_request_id"]) == 36
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "Echo"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == ECHO.handler
    assert env["GW_SHARED"] == "yes"  # the gateway's env reaches every function


def test_host_environment_does_not_leak(make_gateway, monkeypatch) -> None:
    monkeypatch.setenv("GW_LEAK", "host-only")
    gateway, _ = make_gateway(functions=(ECHO,), function_env={"Echo": {"GW_ONLY_ECHO": "1"}})
    env = requests.get(gateway.url + "/echo", timeout=10).json()["env"]
    assert "GW_LEAK" not in env
    assert env["GW_ONLY_ECHO"] == "1"


def test_remaining_time_counts_down(shared_gateway) -> None:
    gateway, _ = shared_gateway
    remaining = int(requests.get(gateway.url + "/b/remaining", timeout=10).text)
    assert 1000 < remaining <= 2000  # BEHAVIOURS has a 2 s timeout


def test_handler_exception_is_500_and_traceback_only_in_log(shared_gateway) -> None:
    gateway, log = shared_gateway
    response = requests.get(gateway.url + "/b/boom", timeout=10)
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert "secret-detail" not in response.text and "Traceback" not in response.text
    text = log.wait_for(
        "[Behaviours] [ERROR]",
        "[Behaviours] Traceback (most recent call last):",
        "RuntimeError: secret-detail-in-traceback",
    )
    assert "[Behaviours] [ERROR]" in text
    assert "[Behaviours] Traceback (most recent call last):" in text
    assert "RuntimeError: secret-detail-in-traceback" in text
    # The environment survives a handled exception (no process restart).
    pid = requests.get(gateway.url + "/b/pid", timeout=10).text
    assert requests.get(gateway.url + "/b/pid", timeout=10).text == pid


def test_handler_output_goes_to_gateway_log_with_function_prefix(shared_gateway) -> None:
    gateway, log = shared_gateway
    response = requests.get(gateway.url + "/b/stderr", timeout=10)
    assert response.status_code == 204
    rid = requests.get(gateway.url + "/echo", timeout=10).json()["event"]["requestContext"][
        "requestId"
    ]
    deadline = time.time() + 5
    while time.time() < deadline and not any(rid in line for line in log.lines):
        time.sleep(0.05)
    assert "[Behaviours] to stderr" in log.lines
    assert any(line.startswith("[Echo] echo call") and rid in line for line in log.lines)


def test_access_log_is_json_per_request(shared_gateway) -> None:
    gateway, log = shared_gateway
    response = requests.get(gateway.url + "/echo/9", timeout=10)
    rid = response.headers["apigw-requestid"]
    # The access-log line is written just after the response goes out: wait for it.
    entry = None
    deadline = time.time() + 5
    while entry is None and time.time() < deadline:
        entries = [json.loads(line) for line in log.lines if line.startswith("{")]
        entry = next((e for e in entries if e["requestId"] == rid), None)
        time.sleep(0.02)
    assert entry is not None
    assert entry["routeKey"] == "ANY /echo/{id}"
    assert entry["status"] == 200
    assert entry["functionName"] == "Echo"
    assert entry["responseLatency"] >= entry["integrationLatency"] > 0


def test_quiet_gateway_writes_no_access_log(make_gateway) -> None:
    gateway, log = make_gateway(functions=(BEHAVIOURS,), quiet=True)
    assert requests.get(gateway.url + "/b/shortcut", timeout=10).status_code == 200
    assert not any(line.startswith("{") for line in log.lines)


def test_timeout_kills_environment_and_next_call_works(make_gateway) -> None:
    gateway, log = make_gateway(functions=(BEHAVIOURS,))
    with requests.Session() as session:
        first_pid = session.get(gateway.url + "/b/pid").text
        started = time.monotonic()
        response = session.get(gateway.url + "/b/sleep?s=30")
        elapsed = time.monotonic() - started
        assert response.status_code == 500  # Lambda's own timeout is a function error
        assert response.json() == INTERNAL_ERROR
        assert 1.9 < elapsed < 6
        assert "Task timed out after 2.00 seconds" in log.wait_for(
            "Task timed out after 2.00 seconds"
        )
        assert session.get(gateway.url + "/b/pid").text != first_pid  # replaced
        assert session.get(gateway.url + "/b/shortcut").status_code == 200


def test_integration_timeout_is_503(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(BEHAVIOURS,), integration_timeout_s=0.5)
    response = requests.get(gateway.url + "/b/sleep?s=5", timeout=10)
    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}
    assert requests.get(gateway.url + "/b/shortcut", timeout=10).status_code == 200


def test_crashing_environment_is_replaced(shared_gateway) -> None:
    gateway, log = shared_gateway
    response = requests.get(gateway.url + "/b/exit", timeout=10)
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert "Runtime.ExitError" in log.wait_for("Runtime.ExitError")
    assert requests.get(gateway.url + "/b/shortcut", timeout=10).status_code == 200


def test_import_error_is_500_every_time(shared_gateway) -> None:
    gateway, log = shared_gateway
    for _ in range(2):
        response = requests.get(gateway.url + "/broken", timeout=10)
        assert response.status_code == 500
        assert response.json() == INTERNAL_ERROR
    assert "Runtime.ImportModuleError" in log.wait_for("Runtime.ImportModuleError")
    assert gateway.health()["functions"]["Broken"]["environments"] == 0


def test_concurrent_requests_all_answered(make_gateway) -> None:
    # a queue deep enough for all 150: this is about answers reaching the right client (load
    # shedding has tests of its own, test_admission.py)
    gateway, _ = make_gateway(functions=(ECHO,), concurrency=4, max_queue=150, max_wait_s=60.0)
    url = urlsplit(gateway.url)

    def one(i: int) -> tuple[int, int]:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            conn.request("GET", f"/echo/{i}")
            response = conn.getresponse()
            body = json.loads(response.read())
            return response.status, int(body["event"]["pathParameters"]["id"])
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=150) as pool:
        results = list(pool.map(one, range(150)))
    assert [status for status, _ in results] == [200] * 150
    assert [i for _, i in results] == list(range(150))  # each got its own answer
    stats = gateway.health()["functions"]["Echo"]
    assert 1 <= stats["environments"] <= 4  # never more environments than the concurrency


def test_stop_kills_workers(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(ECHO,))
    pid = requests.get(gateway.url + "/echo", timeout=10).json()["pid"]
    gateway.stop()
    import os

    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"worker {pid} still alive after stop()")
    try:
        requests.get(gateway.url + "/echo", timeout=2)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("gateway still answering after stop()")
