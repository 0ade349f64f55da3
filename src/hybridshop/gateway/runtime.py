"""Lambda-like execution environments: per function, a lazily grown pool of worker processes.

Why processes: a Lambda environment is its own interpreter with its own module state (the
handlers keep a module-level DB connection) and serves one invocation at a time; a thread
pool would share module state and the GIL. Why a socket pair per worker, driven by the
gateway's event loop: no per-request spawn, no thread per invocation, one write and one
read per invocation on the gateway side, so the gateway adds little to each call.

When every environment of a function is busy, a request waits for one (AWS would throttle;
locally, queueing keeps load tests and the "200 concurrent purchases" test meaningful).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from hybridshop.gateway.context import function_arn
from hybridshop.gateway.events import new_uuid
from hybridshop.gateway.loop import Loop, Timer
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


ResultCallback = Callable[[InvocationResult], None]


@dataclass(eq=False)
class _Job:
    """One invocation waiting for, or running in, an environment."""

    event: dict[str, Any]
    callback: ResultCallback
    deadline: float  # monotonic: the integration timeout
    started: float
    init_ms: float | None = None
    timer: Timer | None = None
    done: bool = False
    aws_request_id: str = field(default_factory=new_uuid)


class Environment:
    """One worker process, driven by the loop. Runs one job at a time."""

    def __init__(self, pool: FunctionPool, job: _Job) -> None:
        spec = pool.spec
        self.pool = pool
        self.spec = spec
        self.loop = pool.loop
        self.log_stream = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        parent_sock, child_sock = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hybridshop.gateway.worker", str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),),
                env=lambda_environment(spec, pool.env, pool.region, self.log_stream),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to the gateway, which stops workers itself
            )
        except OSError:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self.sock = parent_sock
        self.fd = parent_sock.fileno()
        parent_sock.setblocking(False)
        self.state = "init"  # init | idle | busy | dead
        self.job: _Job | None = job
        self.init_ms: float | None = None
        self.invocations = 0
        self._in = bytearray()
        self._out = b""
        self._timer: Timer | None = None
        self._job_started = 0.0
        self._timeout_kind = "timeout"
        assert self.proc.stdout is not None
        self._pump = threading.Thread(
            target=_pump_lines,
            args=(self.proc.stdout, spec.name, pool.log),
            name=f"log-{spec.name}-{self.proc.pid}",
            daemon=True,
        )
        self._pump.start()
        setup = {
            "handler": spec.handler,
            "function_name": spec.name,
            "memory_mb": spec.memory_mb,
            "arn": function_arn(spec.name, pool.region, pool.account_id),
            "log_stream": self.log_stream,
            "sys_path": [p for p in sys.path if p],
        }
        self.loop.add_reader(self.fd, self._on_readable)
        self._timer = self.loop.call_later(INIT_TIMEOUT_S, self._on_init_timeout)
        self._send(json.dumps(setup).encode())

    # -- I/O -------------------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        data = len(payload).to_bytes(4, "big") + payload
        if self._out:
            self._out += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return  # the read side reports the dead process
        if sent < len(data):
            self._out = data[sent:]
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            self._out = b""
            self.loop.remove_writer(self.fd)
            return
        self._out = self._out[sent:]
        if not self._out:
            self.loop.remove_writer(self.fd)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_exit()
            return
        buf = self._in
        buf += data
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + size:
                break
            frame = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            self._on_frame(frame)
            if self.state == "dead":
                return

    def _on_frame(self, frame: bytes) -> None:
        kind = frame[:1]
        if self.state == "init":
            if self._timer is not None:
                self._timer.cancel()
            if kind == b"r":
                self.init_ms = float(frame[1:])
                job = self.job
                self.job = None
                self.state = "idle"
                if job is not None and not job.done:
                    job.init_ms = self.init_ms
                    self.run(job)
                else:
                    self.pool._release(self)
            else:
                payload = json.loads(frame[1:]) if kind == b"i" else _exit_error("init")
                self._fail_init(payload)
            return
        if self.state != "busy" or self.job is None:
            return  # a late reply after a timeout: the job is already answered
        job = self.job
        self.job = None
        if self._timer is not None:
            self._timer.cancel()
        duration = (time.monotonic() - self._job_started) * 1000
        self.state = "idle"
        if kind == b"o":
            result = InvocationResult(
                kind="ok",
                payload=frame[1:].decode("utf-8"),
                aws_request_id=job.aws_request_id,
                duration_ms=duration,
            )
        else:
            result = InvocationResult(
                kind="function_error",
                error=json.loads(frame[1:]),
                aws_request_id=job.aws_request_id,
                duration_ms=duration,
            )
        result.init_ms = job.init_ms
        self.pool._release(self)
        job.callback(result)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self, job: _Job) -> None:
        self.state = "busy"
        self.job = job
        self.invocations += 1
        now = time.monotonic()
        self._job_started = now
        function_timeout = float(self.spec.timeout_s)
        remaining = job.deadline - now
        wait = max(0.001, min(function_timeout, remaining))
        # Which limit strikes first: the function's own (a function error) or API Gateway's.
        self._timeout_kind = "timeout" if function_timeout <= remaining else "integration_timeout"
        deadline_ms = int(time.time() * 1000 + function_timeout * 1000)
        self._timer = self.loop.call_later(wait, self._on_timeout)
        self._send(pickle.dumps((job.event, job.aws_request_id, deadline_ms), protocol=5))

    def _on_timeout(self) -> None:
        job = self.job
        if self.state != "busy" or job is None:
            return
        self.job = None
        duration = (time.monotonic() - self._job_started) * 1000
        self.kill()
        function_timeout = float(self.spec.timeout_s)
        if self._timeout_kind == "timeout":
            result = InvocationResult(
                kind="timeout",
                error={
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {function_timeout:.2f} seconds",
                },
                aws_request_id=job.aws_request_id,
                duration_ms=duration,
            )
        else:
            result = InvocationResult(
                kind="integration_timeout",
                aws_request_id=job.aws_request_id,
                duration_ms=duration,
            )
        result.init_ms = job.init_ms
        job.callback(result)

    def _on_init_timeout(self) -> None:
        if self.state == "init":
            self._fail_init(
                {"errorType": "Runtime.InitTimeout", "errorMessage": "init phase timed out"}
            )

    def _fail_init(self, payload: dict[str, Any]) -> None:
        job = self.job
        self.job = None
        self.kill()
        if job is not None and not job.done:
            job.callback(InvocationResult(kind="function_error", error=payload))

    def _on_exit(self) -> None:
        if self.state == "init":
            self._fail_init(_exit_error("init"))
            return
        job = self.job if self.state == "busy" else None
        self.job = None
        duration = (time.monotonic() - self._job_started) * 1000 if job else 0.0
        self.kill()
        if job is not None:
            result = InvocationResult(
                kind="function_error",
                error=_exit_error("invoke"),
                aws_request_id=job.aws_request_id,
                duration_ms=duration,
            )
            result.init_ms = job.init_ms
            job.callback(result)

    @property
    def alive(self) -> bool:
        return self.state != "dead" and self.proc.poll() is None

    def kill(self) -> None:
        """Kill the process now (loop thread); reaping happens off the loop."""
        if self.state == "dead":
            return
        self.state = "dead"
        if self._timer is not None:
            self._timer.cancel()
        self.loop.forget(self.fd)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.sock.close()
        threading.Thread(target=self._reap, daemon=True).start()
        self.pool._dead(self)

    def _reap(self) -> None:
        self.proc.wait()
        self._pump.join(timeout=1.0)

    def stop(self, grace_s: float = 1.0) -> None:
        """Ask the worker to exit (EOF on its socket), then kill it if it lingers (any thread,
        once the loop has stopped)."""
        self.state = "dead"
        with contextlib.suppress(OSError):
            self.sock.close()
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


def _exit_error(phase: str) -> dict[str, Any]:
    message = "process exited during init" if phase == "init" else "process exited"
    return {"errorType": "Runtime.ExitError", "errorMessage": message}


def _pump_lines(stream: IO[bytes], name: str, log: LogSink) -> None:
    """Forward a worker's output line by line, prefixed like a CloudWatch log group."""
    with stream:
        for raw in iter(stream.readline, b""):
            log(f"[{name}] {raw.decode('utf-8', 'replace').rstrip()}")


class FunctionPool:
    """Up to ``size`` environments of one function, created on demand and reused (LIFO, so
    the most recently used, warmest environment serves the next request). Loop thread only,
    except ``stats`` (plain reads) and ``close`` (after the loop stopped)."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        size: int,
        region: str,
        account_id: str,
        log: LogSink,
        loop: Loop,
    ) -> None:
        self.spec = spec
        self.env = env
        self.size = size
        self.region = region
        self.account_id = account_id
        self.log = log
        self.loop = loop
        self._idle: list[Environment] = []
        self._all: set[Environment] = set()
        self._queue: deque[_Job] = deque()
        self._closed = False

    def stats(self) -> dict[str, int]:
        return {"environments": len(self._all), "idle": len(self._idle), "max": self.size}

    def invoke(
        self,
        event: dict[str, Any],
        callback: ResultCallback,
        timeout_s: float = INTEGRATION_TIMEOUT_S,
    ) -> None:
        """Run ``event``; ``callback`` gets the result on the loop thread, exactly once."""
        now = time.monotonic()
        job = _Job(event=event, callback=callback, deadline=now + timeout_s, started=now)
        if self._closed:
            job.callback(InvocationResult(kind="integration_timeout"))
            return
        if self._idle:
            self._idle.pop().run(job)
        elif len(self._all) < self.size:
            self._spawn(job)
        else:
            job.timer = self.loop.call_later(timeout_s, lambda: self._expire(job))
            self._queue.append(job)

    def _spawn(self, job: _Job) -> None:
        try:
            environment = Environment(self, job)
        except OSError as exc:
            job.callback(
                InvocationResult(
                    kind="function_error",
                    error={"errorType": "Runtime.StartError", "errorMessage": str(exc)},
                )
            )
            return
        self._all.add(environment)

    def _expire(self, job: _Job) -> None:
        if job.done:
            return
        job.done = True
        with contextlib.suppress(ValueError):
            self._queue.remove(job)
        job.callback(InvocationResult(kind="integration_timeout"))

    def _next_queued(self) -> _Job | None:
        while self._queue:
            job = self._queue.popleft()
            if not job.done:
                if job.timer is not None:
                    job.timer.cancel()
                return job
        return None

    def _release(self, environment: Environment) -> None:
        if self._closed or environment.state == "dead":
            return
        job = self._next_queued()
        if job is not None:
            environment.run(job)
        else:
            self._idle.append(environment)

    def _dead(self, environment: Environment) -> None:
        self._all.discard(environment)
        with contextlib.suppress(ValueError):
            self._idle.remove(environment)
        if self._closed:
            return
        # A slot freed up: start a replacement for the next waiting request, if any.
        if len(self._all) < self.size:
            job = self._next_queued()
            if job is not None:
                self._spawn(job)

    def close(self) -> None:
        self._closed = True
        environments = list(self._all)
        self._idle.clear()
        self._all.clear()
        for job in self._queue:
            if job.timer is not None:
                job.timer.cancel()
        self._queue.clear()
        for environment in environments:
            environment.stop(grace_s=0.5)
