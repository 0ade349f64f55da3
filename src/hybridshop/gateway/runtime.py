"""Lambda-like execution environments: per function, a lazily grown pool of worker processes.

Why processes: a Lambda environment is its own interpreter with its own module state (the
handlers keep a module-level DB connection) and serves one invocation at a time; a thread
pool would share module state and the GIL. Why a socket pair per worker: no per-request
spawn and only one pickle each way, so the gateway adds little to each invocation.

When every environment of a function is busy, a request waits for one (AWS would throttle;
locally, queueing keeps load tests and the "200 concurrent purchases" test meaningful).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import IO, Any

from hybridshop.gateway.context import function_arn
from hybridshop.lambda_functions import FunctionSpec

# HTTP API's maximum integration timeout: past it the client gets 503 even if the function
# (whose own timeout may be longer) is still running.
INTEGRATION_TIMEOUT_S = 30.0
INIT_TIMEOUT_S = 10.0  # Lambda's limit for the init phase (imports, module-level setup)

LogSink = Callable[[str], None]


@dataclass
class InvocationResult:
    """Outcome of one invocation, as API Gateway sees it."""

    kind: str  # "ok" | "function_error" | "timeout" | "integration_timeout"
    payload: str = ""  # the function's JSON response when ok
    error: dict[str, Any] | None = None
    aws_request_id: str = ""
    duration_ms: float = 0.0
    init_ms: float | None = None  # set on a cold start


class FunctionError(RuntimeError):
    """The environment could not start (import failure, crash during init)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", "init failed"))
        self.payload = payload


def lambda_environment(
    spec: FunctionSpec, env: dict[str, str], region: str, log_stream: str
) -> dict[str, str]:
    """Environment variables of one execution environment: what Lambda sets, then ``env``."""
    base = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LD_LIBRARY_PATH")
    }
    lambda_vars = {
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "_HANDLER": spec.handler,
        "LAMBDA_TASK_ROOT": os.getcwd(),
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PYTHONUNBUFFERED": "1",  # handler prints reach the log as they happen
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return {**base, **lambda_vars, **env}


class Environment:
    """One worker process. Not thread-safe: the pool hands it to one caller at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        region: str,
        account_id: str,
        log: LogSink,
    ) -> None:
        self.spec = spec
        self.log_stream = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        parent_sock, child_sock = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hybridshop.gateway.worker", str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),),
            env=lambda_environment(spec, env, region, self.log_stream),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to the gateway, which stops workers itself
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        assert self.proc.stdout is not None
        self._pump = threading.Thread(
            target=_pump_lines,
            args=(self.proc.stdout, spec.name, log),
            name=f"log-{spec.name}-{self.proc.pid}",
            daemon=True,
        )
        self._pump.start()
        self.conn.send(
            {
                "handler": spec.handler,
                "function_name": spec.name,
                "memory_mb": spec.memory_mb,
                "arn": function_arn(spec.name, region, account_id),
                "log_stream": self.log_stream,
                "sys_path": [p for p in sys.path if p],
            }
        )
        self.init_ms: float | None = None
        self.invocations = 0

    def wait_ready(self) -> float:
        """Block until the handler module is imported; returns the init duration in ms."""
        if not self.conn.poll(INIT_TIMEOUT_S):
            self.kill()
            raise FunctionError(
                {"errorType": "Runtime.InitTimeout", "errorMessage": "init phase timed out"}
            )
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise FunctionError(
                {"errorType": "Runtime.ExitError", "errorMessage": "process exited during init"}
            ) from None
        if kind != "ready":
            self.kill()
            raise FunctionError(value)
        self.init_ms = float(value)
        return self.init_ms

    def invoke(self, event: dict[str, Any], timeout_s: float) -> InvocationResult:
        """Run one invocation; on timeout or crash the environment is dead (caller drops it)."""
        aws_request_id = str(uuid.uuid4())
        function_timeout = float(self.spec.timeout_s)
        wait = min(function_timeout, timeout_s)
        started = time.perf_counter()
        deadline_ms = int(time.time() * 1000 + function_timeout * 1000)
        self.invocations += 1
        try:
            self.conn.send(("invoke", event, aws_request_id, deadline_ms))
            ready = self.conn.poll(wait)
            if ready:
                kind, value = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            return InvocationResult(
                kind="function_error",
                error={"errorType": "Runtime.ExitError", "errorMessage": "process exited"},
                aws_request_id=aws_request_id,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        duration = (time.perf_counter() - started) * 1000
        if not ready:
            self.kill()
            if function_timeout <= timeout_s:
                return InvocationResult(
                    kind="timeout",
                    error={
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": f"Task timed out after {function_timeout:.2f} seconds",
                    },
                    aws_request_id=aws_request_id,
                    duration_ms=duration,
                )
            return InvocationResult(
                kind="integration_timeout", aws_request_id=aws_request_id, duration_ms=duration
            )
        if kind == "ok":
            return InvocationResult(
                kind="ok", payload=value, aws_request_id=aws_request_id, duration_ms=duration
            )
        return InvocationResult(
            kind="function_error", error=value, aws_request_id=aws_request_id, duration_ms=duration
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait()
        self.conn.close()

    def stop(self, grace_s: float = 1.0) -> None:
        """Ask the worker to exit (EOF on its socket), then kill it if it lingers."""
        self.conn.close()
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            except ProcessLookupError:
                pass
        self._pump.join(timeout=1.0)


def _pump_lines(stream: IO[bytes], name: str, log: LogSink) -> None:
    """Forward a worker's output line by line, prefixed like a CloudWatch log group."""
    with stream:
        for raw in iter(stream.readline, b""):
            log(f"[{name}] {raw.decode('utf-8', 'replace').rstrip()}")


class FunctionPool:
    """Up to ``size`` environments of one function, created on demand and reused (LIFO, so
    the most recently used, warmest environment serves the next request)."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        size: int,
        region: str,
        account_id: str,
        log: LogSink,
    ) -> None:
        self.spec = spec
        self._env = env
        self._size = size
        self._region = region
        self._account_id = account_id
        self._log = log
        self._idle: list[Environment] = []
        self._all: set[Environment] = set()
        self._count = 0  # environments alive or being created
        self._cond = threading.Condition()
        self._closed = False

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"environments": self._count, "idle": len(self._idle), "max": self._size}

    def _acquire(self, timeout_s: float) -> Environment | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("gateway is stopping")
                if self._idle:
                    return self._idle.pop()
                if self._count < self._size:
                    self._count += 1
                    return None  # caller creates a new environment outside the lock
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._cond.wait(remaining)

    def _release(self, environment: Environment) -> None:
        with self._cond:
            if self._closed or not environment.alive:
                self._count -= 1
                self._all.discard(environment)
                dead = True
            else:
                self._idle.append(environment)
                dead = False
            self._cond.notify()
        if dead:
            environment.stop(grace_s=0.5)

    def _drop(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def invoke(
        self, event: dict[str, Any], timeout_s: float = INTEGRATION_TIMEOUT_S
    ) -> InvocationResult:
        started = time.monotonic()
        try:
            environment = self._acquire(timeout_s)
        except TimeoutError:
            return InvocationResult(kind="integration_timeout")
        init_ms = None
        if environment is None:
            try:
                environment = Environment(
                    self.spec,
                    self._env,
                    region=self._region,
                    account_id=self._account_id,
                    log=self._log,
                )
            except OSError as exc:
                self._drop()
                return InvocationResult(
                    kind="function_error",
                    error={"errorType": "Runtime.StartError", "errorMessage": str(exc)},
                )
            with self._cond:
                self._all.add(environment)
            try:
                init_ms = environment.wait_ready()
            except FunctionError as exc:
                with self._cond:
                    self._all.discard(environment)
                self._drop()
                return InvocationResult(kind="function_error", error=exc.payload)
        remaining = max(0.001, timeout_s - (time.monotonic() - started))
        result = environment.invoke(event, remaining)
        result.init_ms = init_ms
        self._release(environment)
        return result

    def close(self) -> None:
        with self._cond:
            self._closed = True
            environments = list(self._all)
            self._idle.clear()
            self._cond.notify_all()
        for environment in environments:
            environment.stop(grace_s=0.5)
