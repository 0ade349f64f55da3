"""Lambda-like execution environments: per function, a lazily grown pool of worker processes.

Why processes: a Lambda environment is its own interpreter with its own module state (the
handlers keep a module-level DB connection) and serves one invocation at a time; a thread
pool would share module state and the GIL. Each worker is linked to the gateway's event loop
by a socket pair speaking ``frames``; one write and one read per invocation.

An environment is busy only while its handler runs, as on AWS where clients talk to API
Gateway and never to the function: the response is handed back to the HTTP side and the
environment is free again before a byte goes to the client.

Admission (load shedding): when every environment of a function is busy, a request waits,
first come first served, in a short bounded queue (``Admission``). It is refused at once
with ``throttled`` when that queue is full or when the wait it would have, estimated from
the recent invocation times, is longer than the bound; a request that does wait and gets
no environment within the bound is refused too. The gateway answers those 429 with
``Retry-After``, as API Gateway's throttling does, instead of holding a client for the
30 s integration timeout. A refused request never reached a handler: nothing of it was
written anywhere. Timeouts are enforced here by killing the process, like Lambda's
``Task timed out``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
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
from dataclasses import dataclass
from typing import IO, Any

from hybridshop.gateway.context import function_arn
from hybridshop.gateway.events import new_uuid
from hybridshop.gateway.frames import FrameDecoder, FrameError, Kind, encode
from hybridshop.lambda_functions import FunctionSpec

# HTTP API's maximum integration timeout: past it the client gets 503 even if the function
# (whose own timeout may be longer) is still running.
INTEGRATION_TIMEOUT_S = 30.0
INIT_TIMEOUT_S = 10.0  # Lambda's limit for the init phase (imports, module-level setup)

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class Admission:
    """How much waiting a function's pool admits once all its environments are busy.

    ``max_queue`` requests may wait per function (0: none, refuse as soon as every
    environment is busy, like Lambda's own throttling); none waits longer than
    ``max_wait_s``. Past either bound a request is refused (429 + Retry-After)."""

    max_queue: int = 32
    max_wait_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_queue < 0:
            raise ValueError("max_queue must be 0 or more")
        if not self.max_wait_s > 0:
            raise ValueError("max_wait_s must be more than 0")


@dataclass
class InvocationResult:
    """Outcome of one invocation, as API Gateway sees it."""

    # "ok" | "function_error" | "timeout" | "integration_timeout" | "throttled"
    kind: str
    payload: str = ""  # the function's JSON response when ok
    error: dict[str, Any] | None = None
    aws_request_id: str = ""
    duration_ms: float = 0.0
    init_ms: float | None = None  # set on a cold start
    retry_after_s: int = 0  # set when throttled: when a retry has a fair chance


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


def _exit_error(phase: str) -> dict[str, Any]:
    message = "process exited during init" if phase == "init" else "process exited"
    return {"errorType": "Runtime.ExitError", "errorMessage": message}


def _pump_lines(stream: IO[bytes], name: str, log: LogSink) -> None:
    """Forward a worker's output line by line, prefixed like a CloudWatch log group."""
    with stream:
        for raw in iter(stream.readline, b""):
            log(f"[{name}] {raw.decode('utf-8', 'replace').rstrip()}")


class _Link:
    """The gateway's end of one worker's socket pair, driven by the loop's reader/writer
    callbacks with plain non-blocking ``send``/``recv`` (one syscall each way per
    invocation; an asyncio transport cost ~100x more here, measured)."""

    def __init__(self, environment: Environment, sock: socket.socket) -> None:
        self.environment = environment
        self.loop = environment.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = FrameDecoder()
        self.pending = b""  # what a full socket buffer did not take yet
        self.closed = False

    def open(self) -> None:
        self.loop.add_reader(self.fd, self._readable)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the read side reports the dead process
        if sent < len(data):
            self.pending = data[sent:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.pending = b""
            self.loop.remove_writer(self.fd)
            return
        self.pending = self.pending[sent:]
        if not self.pending:
            self.loop.remove_writer(self.fd)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.environment.on_exit()
            return
        try:
            frames = self.decoder.feed(data)
        except FrameError:
            self.environment.kill()
            return
        for kind, payload in frames:
            self.environment.on_frame(kind, payload)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        if self.pending:
            self.loop.remove_writer(self.fd)
        self.sock.close()


class Environment:
    """One worker process: ``start`` it once, then ``run`` one invocation at a time."""

    def __init__(self, pool: FunctionPool) -> None:
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
        parent_sock.setblocking(False)
        self.state = "init"  # init | idle | busy | dead
        self.link = _Link(self, parent_sock)
        self._reply: asyncio.Future[InvocationResult] | None = None
        self._started = 0.0
        self._rid = ""
        assert self.proc.stdout is not None
        self._pump = threading.Thread(
            target=_pump_lines,
            args=(self.proc.stdout, spec.name, pool.log),
            name=f"log-{spec.name}-{self.proc.pid}",
            daemon=True,
        )
        self._pump.start()

    def _send(self, kind: Kind, payload: bytes) -> None:
        # A write error needs no handling here: the read side reports the dead process.
        self.link.write(encode(kind, payload))

    async def start(self) -> InvocationResult:
        """Import the handler in the worker: ``ok`` with the init time in ms as its payload,
        or the ``function_error`` that stopped it (the process is killed then)."""
        self.link.open()
        setup = {
            "handler": self.spec.handler,
            "function_name": self.spec.name,
            "memory_mb": self.spec.memory_mb,
            "arn": function_arn(self.spec.name, self.pool.region, self.pool.account_id),
            "log_stream": self.log_stream,
            "sys_path": [p for p in sys.path if p],
        }
        ready: asyncio.Future[InvocationResult] = self.loop.create_future()
        self._reply = ready
        timer = self.loop.call_later(INIT_TIMEOUT_S, self._init_timed_out)
        self._send(Kind.SETUP, json.dumps(setup).encode())
        try:
            result = await ready
        finally:
            timer.cancel()
            self._reply = None
        if result.kind != "ok":
            self.kill()
            result.error = result.error or _exit_error("init")
            return result
        self.state = "idle"
        return result

    def _init_timed_out(self) -> None:
        self._answer(
            InvocationResult(
                kind="function_error",
                error={"errorType": "Runtime.InitTimeout", "errorMessage": "init phase timed out"},
            )
        )

    async def run(
        self, event: dict[str, Any], rid: str, deadline: float, integration_deadline: float
    ) -> InvocationResult:
        """One invocation; the process is killed if it runs past ``deadline`` (monotonic)."""
        self.state = "busy"
        self._rid = rid
        self._started = time.monotonic()
        reply: asyncio.Future[InvocationResult] = self.loop.create_future()
        self._reply = reply
        kind = "integration_timeout" if integration_deadline <= deadline else "timeout"
        timer = self.loop.call_later(
            max(0.0, min(deadline, integration_deadline) - self._started), self._late, kind
        )
        wall_deadline_ms = int((time.time() + (deadline - self._started)) * 1000)
        self._send(Kind.INVOKE, pickle.dumps((event, rid, wall_deadline_ms), protocol=5))
        try:
            result = await reply
        finally:
            timer.cancel()
            self._reply = None
        if self.state == "busy":
            self.state = "idle"
        result.aws_request_id = rid
        result.duration_ms = (time.monotonic() - self._started) * 1000
        return result

    def _late(self, kind: str) -> None:
        if kind == "timeout":
            result = InvocationResult(
                kind="timeout",
                error={
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {float(self.spec.timeout_s):.2f} seconds",
                },
            )
        else:
            result = InvocationResult(kind="integration_timeout")
        self._answer(result)
        self.kill()

    def _answer(self, result: InvocationResult) -> None:
        reply = self._reply
        if reply is not None and not reply.done():
            reply.set_result(result)

    def on_frame(self, kind: Kind, payload: bytes) -> None:
        if kind is Kind.READY:
            self._answer(InvocationResult(kind="ok", payload=payload.decode()))
        elif kind is Kind.INIT_ERROR:
            self._answer(InvocationResult(kind="function_error", error=json.loads(payload)))
        elif kind is Kind.RESULT:
            self._answer(InvocationResult(kind="ok", payload=payload.decode("utf-8")))
        elif kind is Kind.ERROR:
            self._answer(InvocationResult(kind="function_error", error=json.loads(payload)))

    def on_exit(self) -> None:
        phase = "init" if self.state == "init" else "invoke"
        self._answer(InvocationResult(kind="function_error", error=_exit_error(phase)))
        self.kill()

    def kill(self) -> None:
        """Kill the process now (loop thread); reaping happens off the loop."""
        if self.state == "dead":
            return
        self.state = "dead"
        self.link.close()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        threading.Thread(target=self._reap, daemon=True).start()
        self.pool._dead(self)

    def _reap(self) -> None:
        self.proc.wait()
        self._pump.join(timeout=1.0)

    def stop(self, grace_s: float = 1.0) -> None:
        """Ask the worker to exit (SIGTERM), then kill it if it lingers (once the loop stopped)."""
        self.state = "dead"
        with contextlib.suppress(Exception):  # the loop has stopped: unregister, then close
            self.link.close()
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


_SPAWN = object()  # handed to a waiter: a slot freed up, start an environment yourself
_MEAN_WEIGHT = 0.2  # of the newest invocation in the running mean of invocation times


def _give_up(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)  # its bound passed while it waited


class FunctionPool:
    """Up to ``size`` environments of one function, created on demand and reused (LIFO, so
    the most recently used, warmest environment serves the next request), and the bounded
    queue of requests waiting for one (``Admission``). Loop thread only, except ``stats``
    (plain reads) and ``close`` (after the loop stopped)."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        size: int,
        region: str,
        account_id: str,
        log: LogSink,
        loop: asyncio.AbstractEventLoop,
        admission: Admission | None = None,
    ) -> None:
        self.spec = spec
        self.env = env
        self.size = size
        self.region = region
        self.account_id = account_id
        self.log = log
        self.loop = loop
        self.admission = admission or Admission()
        self._idle: list[Environment] = []
        self._all: set[Environment] = set()
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._mean_s = 0.0  # running mean of invocation times; 0 until the first one
        self._throttled = 0
        self._closed = False

    def stats(self) -> dict[str, int]:
        return {
            "environments": len(self._all),
            "idle": len(self._idle),
            "max": self.size,
            "waiting": len(self._waiters),
            "max_waiting": self.admission.max_queue,
            "throttled": self._throttled,
        }

    async def invoke(
        self, event: dict[str, Any], timeout_s: float = INTEGRATION_TIMEOUT_S
    ) -> InvocationResult:
        """Run ``event`` in an environment of this function, within ``timeout_s`` in all;
        ``throttled`` (the event never sent) when admission refuses it."""
        integration_deadline = time.monotonic() + timeout_s
        rid = new_uuid()
        if self._closed:
            return InvocationResult(kind="integration_timeout", aws_request_id=rid)
        got = await self._acquire(integration_deadline)
        if isinstance(got, InvocationResult):
            got.aws_request_id = got.aws_request_id or rid
            return got
        environment, init_ms = got
        deadline = time.monotonic() + float(self.spec.timeout_s)
        result = await environment.run(event, rid, deadline, integration_deadline)
        result.init_ms = init_ms
        seconds = result.duration_ms / 1000
        mean = self._mean_s
        self._mean_s = seconds if not mean else mean + _MEAN_WEIGHT * (seconds - mean)
        self._release(environment)
        return result

    def expected_wait_s(self, position: int) -> float:
        """About how long the request at ``position`` (0: first) of the queue will wait: one
        environment frees up every mean invocation time / ``size`` on average."""
        return (position + 1) * self._mean_s / self.size

    def _throttle(self, position: int, reason: str) -> InvocationResult:
        self._throttled += 1
        retry_after = max(1, math.ceil(self.expected_wait_s(position)))
        return InvocationResult(
            kind="throttled",
            error={"errorType": "Throttled", "errorMessage": reason},
            retry_after_s=retry_after,
        )

    async def _acquire(
        self, integration_deadline: float
    ) -> tuple[Environment, float | None] | InvocationResult:
        if self._idle:
            return self._idle.pop(), None
        if len(self._all) >= self.size:
            admission = self.admission
            position = len(self._waiters)
            # shed now, never queued and never invoked: the queue is full, or the wait
            # would be longer than a client should be held
            if position >= admission.max_queue:
                return self._throttle(position, f"{position} requests already waiting")
            if self.expected_wait_s(position) > admission.max_wait_s:
                return self._throttle(
                    position, f"expected wait {self.expected_wait_s(position):.1f}s"
                )
            now = time.monotonic()
            shed_at = now + admission.max_wait_s
            waiter: asyncio.Future[Any] = self.loop.create_future()
            self._waiters.append(waiter)
            timer = self.loop.call_later(
                max(0.0, min(shed_at, integration_deadline) - now), _give_up, waiter
            )
            try:
                got = await waiter
            finally:
                timer.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if got is None:
                if self._closed or integration_deadline <= shed_at:
                    return InvocationResult(kind="integration_timeout")
                return self._throttle(
                    len(self._waiters), f"no environment within {admission.max_wait_s:g}s"
                )
            if got is not _SPAWN:
                return got, None
        return await self._spawn()

    async def _spawn(self) -> tuple[Environment, float | None] | InvocationResult:
        try:
            environment = Environment(self)
        except OSError as exc:
            self._hand_slot()
            return InvocationResult(
                kind="function_error",
                error={"errorType": "Runtime.StartError", "errorMessage": str(exc)},
            )
        self._all.add(environment)
        try:
            started = await environment.start()
        except OSError as exc:
            environment.kill()
            return InvocationResult(
                kind="function_error",
                error={"errorType": "Runtime.StartError", "errorMessage": str(exc)},
            )
        if started.kind != "ok":
            return started
        return environment, float(started.payload)

    def _release(self, environment: Environment) -> None:
        if self._closed or environment.state != "idle":
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(environment)
                return
        self._idle.append(environment)

    def _hand_slot(self) -> None:
        """A slot freed up: let the first waiting request start a new environment."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(_SPAWN)
                return

    def _dead(self, environment: Environment) -> None:
        self._all.discard(environment)
        with contextlib.suppress(ValueError):
            self._idle.remove(environment)
        if not self._closed and len(self._all) < self.size:
            self._hand_slot()

    def close(self) -> None:
        self._closed = True
        environments = list(self._all)
        self._idle.clear()
        self._all.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        for environment in environments:
            environment.stop(grace_s=0.5)
