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
import itertools
import json
import mmap
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from hybridshop.gateway.context import function_arn
from hybridshop.gateway.events import new_uuid
from hybridshop.gateway.loop import Loop, SocketWriter, Timer
from hybridshop.gateway.worker import KIND_FUNCTION, KIND_IDLE, RECORD
from hybridshop.lambda_functions import FunctionSpec

# HTTP API's maximum integration timeout: past it the client gets 503 even if the function
# (whose own timeout may be longer) is still running.
INTEGRATION_TIMEOUT_S = 30.0
INIT_TIMEOUT_S = 10.0  # Lambda's limit for the init phase (imports, module-level setup)
MONITOR_INTERVAL_S = 0.05  # how often invocation records are checked against their deadline
_KIND_OFFSET = RECORD.size - 1

LogSink = Callable[[str], None]


def _ignore() -> None:
    """Nothing to do: a worker socket that fails is reported by its read side."""


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
_seq = itertools.count()


class ConnectionHost(Protocol):
    """The gateway side of handed-off connections (see ``handoff``)."""

    def handback(self, conn_id: int, data: bytes) -> None: ...

    def conn_closed(self, conn_id: int) -> None: ...

    def conn_failed(
        self, conn_id: int, result: InvocationResult | None, spec: FunctionSpec
    ) -> None: ...


@dataclass
class Handoff:
    """What environments need to serve handed-off connections themselves."""

    host: ConnectionHost
    routes: list[tuple[str, str]]  # (route key, function name) of the whole API
    port: int
    account_id: str
    integration_timeout_s: float
    access_log: bool
    max_body: int


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
    seq: int = field(default_factory=lambda: next(_seq))


class Environment:
    """One worker process, driven by the loop. Runs one gateway job at a time (and, with
    handoff, requests of at most one connection it serves itself, in between)."""

    def __init__(self, pool: FunctionPool, job: _Job) -> None:
        spec = pool.spec
        self.pool = pool
        self.spec = spec
        self.loop = pool.loop
        self.log_stream = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        record_fd = _record_fd(spec.name)
        parent_sock, child_sock = socket.socketpair()
        try:
            os.ftruncate(record_fd, RECORD.size)
            self.record = mmap.mmap(record_fd, RECORD.size)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hybridshop.gateway.worker", str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(), record_fd),
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
            os.close(record_fd)  # both processes keep their mapping
        self.sock = parent_sock
        self.fd = parent_sock.fileno()
        parent_sock.setblocking(False)
        self.state = "init"  # init | idle | busy | dead
        self.job: _Job | None = job
        self.conns: set[int] = set()  # handed-off connections this environment serves
        self.init_ms: float | None = None
        self.invocations = 0
        self._in = bytearray()
        self.writer = SocketWriter(self.loop, parent_sock, on_error=_ignore)
        self._timer: Timer | None = None
        self._job_started = 0.0
        assert self.proc.stdout is not None
        self._pump = threading.Thread(
            target=_pump_lines,
            args=(self.proc.stdout, spec.name, pool.log),
            name=f"log-{spec.name}-{self.proc.pid}",
            daemon=True,
        )
        self._pump.start()
        setup: dict[str, Any] = {
            "handler": spec.handler,
            "function_name": spec.name,
            "memory_mb": spec.memory_mb,
            "timeout_s": spec.timeout_s,
            "arn": function_arn(spec.name, pool.region, pool.account_id),
            "log_stream": self.log_stream,
            "sys_path": [p for p in sys.path if p],
            "record_fd": record_fd,
        }
        handoff = pool.handoff
        if handoff is not None:
            setup.update(
                handoff=True,
                routes=handoff.routes,
                port=handoff.port,
                account_id=handoff.account_id,
                integration_timeout_s=handoff.integration_timeout_s,
                access_log=handoff.access_log,
                max_body=handoff.max_body,
            )
        self.loop.add_reader(self.fd, self._on_readable)
        self._timer = self.loop.call_later(INIT_TIMEOUT_S, self._on_init_timeout)
        self._send(json.dumps(setup).encode())

    # -- I/O -------------------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        # A write error needs no handling here: the read side reports the dead process.
        self.writer.write(len(payload).to_bytes(4, "big") + payload)

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
        if kind == b"L":
            self.pool.log(frame[1:].decode("utf-8", "replace"))
            return
        if kind in (b"b", b"c"):
            host = self.pool.handoff.host if self.pool.handoff else None
            # Frames come only from our own worker over a private socket pair.
            value = pickle.loads(frame[1:])  # noqa: S301
            conn_id = value[0] if kind == b"b" else value
            self.conns.discard(conn_id)
            if host is not None:
                if kind == b"b":
                    host.handback(conn_id, value[1])
                else:
                    host.conn_closed(conn_id)
            return
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
        duration = (time.monotonic() - self._job_started) * 1000
        self.state = "idle"
        if kind == b"o":
            result = InvocationResult(
                kind="ok",
                payload=frame[1:].decode("utf-8"),
                aws_request_id=job.aws_request_id,
                duration_ms=duration,
            )
        elif kind == b"x":
            result = InvocationResult(
                kind="integration_timeout", aws_request_id=job.aws_request_id, duration_ms=duration
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
        self._job_started = time.monotonic()
        message = (job.event, job.aws_request_id, job.seq, job.deadline)
        self._send(b"j" + pickle.dumps(message, protocol=5))

    def hand_off(self, conn_id: int, sock: socket.socket, ip: str) -> bool:
        """Pass a client connection to this environment; False if it cannot take it now."""
        if self.state not in ("idle", "busy") or self.writer.pending:
            return False
        payload = b"h" + pickle.dumps((conn_id, ip))
        data = len(payload).to_bytes(4, "big") + payload
        try:
            sent = socket.send_fds(self.sock, [data], [sock.fileno()])
        except OSError:
            return False
        self.writer.keep(data[sent:])  # the descriptor went with the first byte
        self.conns.add(conn_id)
        return True

    def check(self, now: float) -> None:
        """Kill the environment if what it runs is past its deadline (monitor tick)."""
        if self.record[_KIND_OFFSET] == KIND_IDLE:
            return
        deadline, conn_id, seq, rid, kind = RECORD.unpack_from(self.record, 0)
        if kind == KIND_IDLE or now < deadline:
            return
        # Take in any reply already written (say, of a gateway job that finished just before
        # the late request started), so that job is neither lost nor run twice.
        self._on_readable()
        if self.state == "dead":
            return
        function_timeout = float(self.spec.timeout_s)
        if kind == KIND_FUNCTION:
            result = InvocationResult(
                kind="timeout",
                error={
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {function_timeout:.2f} seconds",
                },
                aws_request_id=rid.decode(),
            )
        else:
            result = InvocationResult(kind="integration_timeout", aws_request_id=rid.decode())
        self._die(result, conn_id, seq)

    def _die(self, result: InvocationResult, conn_id: int, seq: int) -> None:
        """Kill, then answer whoever waited: the running request gets ``result``, a gateway
        job that had not started yet is queued again, other connections are closed."""
        job = self.job if self.state == "busy" else None
        self.job = None
        conns = set(self.conns)
        self.conns.clear()
        if job is not None:
            result.duration_ms = (time.monotonic() - self._job_started) * 1000
        self.kill()
        if job is not None and conn_id >= 0:
            self.pool._requeue(job)  # it never started: a delegated request was running
        elif job is not None:
            result.init_ms = job.init_ms
            result.aws_request_id = result.aws_request_id or job.aws_request_id
            job.callback(result)
        host = self.pool.handoff.host if self.pool.handoff else None
        if host is None:
            return
        for cid in conns:
            host.conn_failed(cid, result if cid == conn_id else None, self.spec)

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
        conn_id, seq = -1, -1
        if self.record[_KIND_OFFSET] != KIND_IDLE:
            _deadline, conn_id, seq, _rid, _kind = RECORD.unpack_from(self.record, 0)
        result = InvocationResult(kind="function_error", error=_exit_error("invoke"))
        if conn_id < 0 and self.job is not None:
            result.aws_request_id = self.job.aws_request_id
        self._die(result, conn_id, seq)

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


def _record_fd(name: str) -> int:
    """A descriptor of a small shared file: a memfd on Linux, an unlinked temp file elsewhere."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create(f"hybridshop-{name}", os.MFD_CLOEXEC)
    fd, path = tempfile.mkstemp(prefix="hybridshop-record-")
    os.unlink(path)
    return fd


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
        handoff: Handoff | None = None,
    ) -> None:
        self.spec = spec
        self.env = env
        self.size = size
        self.region = region
        self.account_id = account_id
        self.log = log
        self.loop = loop
        self.handoff = handoff
        self._idle: list[Environment] = []
        self._all: set[Environment] = set()
        self._queue: deque[_Job] = deque()
        self._closed = False
        self.loop.call_later(MONITOR_INTERVAL_S, self._monitor)

    def stats(self) -> dict[str, int]:
        return {
            "environments": len(self._all),
            "idle": len(self._idle),
            "max": self.size,
            "connections": sum(len(e.conns) for e in list(self._all)),
        }

    def _monitor(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        for environment in list(self._all):
            if environment.state in ("idle", "busy"):
                environment.check(now)
        self.loop.call_later(MONITOR_INTERVAL_S, self._monitor)

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
        self._schedule(job)

    def _schedule(self, job: _Job) -> None:
        idle = self._idle
        if idle:
            # Prefer an environment that serves no connection of its own: it is really free.
            for i in range(len(idle) - 1, -1, -1):
                if not idle[i].conns:
                    idle.pop(i).run(job)
                    return
            idle.pop().run(job)
        elif len(self._all) < self.size:
            self._spawn(job)
        else:
            remaining = max(0.0, job.deadline - time.monotonic())
            job.timer = self.loop.call_later(remaining, lambda: self._expire(job))
            self._queue.append(job)

    def _requeue(self, job: _Job) -> None:
        if not self._closed and not job.done:
            self._schedule(job)

    def handoff_target(self) -> Environment | None:
        """An environment that serves no connection yet (idle ones first), if any."""
        if self.handoff is None:
            return None
        best = None
        for environment in self._idle:
            if not environment.conns:
                return environment
        for environment in self._all:
            if environment.state == "busy" and not environment.conns:
                best = environment
        return best

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
