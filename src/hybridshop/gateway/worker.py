"""One Lambda execution environment: a child process that imports a handler once and serves
invocations one at a time, keeping module state warm in between (like a warm Lambda).

Run as ``python -m hybridshop.gateway.worker <fd>`` by ``runtime.Environment``; ``fd`` is
the worker's end of a socket pair carrying length-prefixed frames: a JSON setup, then
``b"j"`` + a pickled job per gateway invocation (and, with handoff, ``b"h"`` + a client
socket passed with SCM_RIGHTS, see ``handoff``); replies are one kind byte plus JSON text.
Plain reads and writes: no multiprocessing machinery per request. Stdout/stderr stay free
for the handler's own output, which the gateway prefixes with the function name, as
CloudWatch would group it by function.

Like the AWS runtime, the return value is serialised to JSON here: a handler returning
something JSON cannot express fails the same way it would on AWS.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import mmap
import pickle
import socket
import struct
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from hybridshop.gateway.context import LambdaContext


def error_payload(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """The error object the Lambda runtime reports for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_exception(exc),
    }


def log_error(payload: dict[str, Any], request_id: str | None = None) -> None:
    """Print the error as the Python runtime does, so it lands in the function's log."""
    rid = f"\t{request_id}" if request_id else ""
    trace = "".join(payload.get("stackTrace", []))
    print(
        f"[ERROR]{rid}\t{payload['errorType']}: {payload['errorMessage']}\n{trace}",
        file=sys.stderr,
        end="",
        flush=True,
    )


def load_handler(handler: str) -> Callable[[Any, Any], Any]:
    module_name, _, attr = handler.rpartition(".")
    module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise AttributeError(f"handler '{attr}' missing on module '{module_name}'")
    return fn


# Invocation record shared with the gateway (a memfd both map): while a handler runs it holds
# the deadline (CLOCK_MONOTONIC is system-wide), what is running and which limit applies, so
# the gateway enforces timeouts even for requests it never saw (handed-off connections).
RECORD = struct.Struct("<dqq36sB")  # deadline, conn id (-1), job seq (-1), aws request id, kind
KIND_IDLE, KIND_FUNCTION, KIND_INTEGRATION = 0, 1, 2
_KIND_OFFSET = RECORD.size - 1


class Record:
    def __init__(self, fd: int) -> None:
        self.map = mmap.mmap(fd, RECORD.size)

    def start(self, deadline: float, conn_id: int, seq: int, rid: str, kind: int) -> None:
        RECORD.pack_into(self.map, 0, deadline, conn_id, seq, rid.encode(), KIND_IDLE)
        self.map[_KIND_OFFSET] = kind  # written last: the gateway reads kind first

    def clear(self) -> None:
        self.map[_KIND_OFFSET] = KIND_IDLE


def write_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(len(payload).to_bytes(4, "big") + payload)


class Runtime:
    """The handler plus what every invocation needs (context fields, timeouts, the record)."""

    def __init__(self, setup: dict[str, Any], handler: Callable[[Any, Any], Any]) -> None:
        self.handler = handler
        self.function_name: str = setup["function_name"]
        self.memory_mb: int = setup["memory_mb"]
        self.arn: str = setup["arn"]
        self.log_stream: str = setup["log_stream"]
        self.timeout_s = float(setup["timeout_s"])
        self.record = Record(setup["record_fd"])
        self.dumps = json.JSONEncoder(separators=(",", ":")).encode

    def invoke(
        self, event: Any, rid: str, deadline: float, kind: int, conn_id: int, seq: int
    ) -> bytes:
        """Run the handler once; the reply frame: b"o" + JSON result or b"e" + error JSON."""
        context = LambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.memory_mb,
            invoked_function_arn=self.arn,
            aws_request_id=rid,
            log_stream_name=self.log_stream,
            deadline_epoch_ms=int(time.time() * 1000 + self.timeout_s * 1000),
        )
        self.record.start(deadline, conn_id, seq, rid, kind)
        try:
            reply = b"o" + self.dumps(self.handler(event, context)).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            payload = error_payload(exc)
            if "JSON serializable" in str(exc):
                payload["errorType"] = "Runtime.MarshalError"
            log_error(payload, rid)
            reply = b"e" + json.dumps(payload).encode()
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes a function error
            payload = error_payload(exc)
            log_error(payload, rid)
            reply = b"e" + json.dumps(payload).encode()
        finally:
            self.record.clear()
        sys.stdout.flush()
        return reply

    def run_job(self, message: bytes) -> bytes:
        """A job the gateway dispatched: ``(event, rid, seq, integration deadline)``."""
        # Frames come only from our own gateway over a private socket pair.
        event, rid, seq, integration_deadline = pickle.loads(message)  # noqa: S301
        now = time.monotonic()
        if now >= integration_deadline:
            return b"x"  # waited too long behind a handed-off request: API Gateway gave up
        deadline = now + self.timeout_s
        kind = KIND_FUNCTION
        if integration_deadline < deadline:
            deadline, kind = integration_deadline, KIND_INTEGRATION
        return self.invoke(event, rid, deadline, kind, -1, seq)


class Control:
    """The gateway's end of the socket pair: frames in (with passed descriptors), frames out."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.pending = bytearray()
        self.fds: deque[int] = deque()

    def fill(self) -> bool:
        """One read; False at EOF."""
        data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 16, 8)
        self.fds.extend(fds)
        if not data:
            return False
        self.pending += data
        return True

    def next_frame(self) -> bytes | None:
        pending = self.pending
        if len(pending) >= 4:
            size = int.from_bytes(pending[:4], "big")
            if len(pending) >= 4 + size:
                frame = bytes(pending[4 : 4 + size])
                del pending[: 4 + size]
                return frame
        return None

    def read_frame(self) -> bytes | None:
        """Block until one frame arrives (None at EOF)."""
        while True:
            frame = self.next_frame()
            if frame is not None:
                return frame
            if not self.fill():
                return None

    def send(self, payload: bytes) -> None:
        write_frame(self.sock, payload)


def serve(fd: int) -> None:
    control = Control(fd)
    first = control.read_frame()
    if first is None:
        return
    setup: dict[str, Any] = json.loads(first)
    for path in reversed(setup.get("sys_path", [])):
        if path not in sys.path:
            sys.path.insert(0, path)
    started = time.perf_counter()
    try:
        handler = load_handler(setup["handler"])
    except Exception as exc:  # noqa: BLE001 - reported to the gateway like Runtime.ImportModuleError
        payload = error_payload(exc, "Runtime.ImportModuleError")
        log_error(payload)
        control.send(b"i" + json.dumps(payload).encode())
        return
    runtime = Runtime(setup, handler)
    control.send(b"r" + str((time.perf_counter() - started) * 1000).encode())
    if setup.get("handoff"):
        from hybridshop.gateway.handoff import serve_with_connections

        serve_with_connections(control, runtime, setup)
        return
    while True:
        try:
            message = control.read_frame()
        except OSError:
            return
        if message is None:
            return  # the gateway went away: an environment never outlives its gateway
        try:
            control.send(runtime.run_job(message[1:]))  # b"j" + job
        except OSError:
            return


def main() -> None:
    # Ctrl-C reaches the whole process group; the gateway reports the shutdown.
    with contextlib.suppress(KeyboardInterrupt):
        serve(int(sys.argv[1]))


if __name__ == "__main__":
    main()
