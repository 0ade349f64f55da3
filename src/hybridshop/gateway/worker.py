"""One Lambda execution environment: a child process that imports a handler once and serves
invocations one at a time, keeping module state warm in between (like a warm Lambda).

Run as ``python -m hybridshop.gateway.worker <fd>`` by ``runtime.Environment``; ``fd`` is
the worker's end of a socket pair speaking the frames of ``gateway.frames``. Stdout/stderr
stay free for the handler's own output, which the gateway prefixes with the function name,
as CloudWatch groups it by function.

Like the AWS runtime, the return value is serialised to JSON here: a handler returning
something JSON cannot express fails the same way it would on AWS.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import pickle
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from hybridshop.gateway.context import LambdaContext
from hybridshop.gateway.frames import FrameReader, Kind, write_frame


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


class Runtime:
    """The handler plus what every invocation needs (the context's fields)."""

    def __init__(self, setup: dict[str, Any], handler: Callable[[Any, Any], Any]) -> None:
        self.handler = handler
        self.function_name: str = setup["function_name"]
        self.memory_mb: int = setup["memory_mb"]
        self.arn: str = setup["arn"]
        self.log_stream: str = setup["log_stream"]
        self.dumps = json.JSONEncoder(separators=(",", ":")).encode

    def invoke(self, event: Any, rid: str, deadline_epoch_ms: int) -> tuple[Kind, bytes]:
        """Run the handler once: ``RESULT`` + JSON text, or ``ERROR`` + the error object."""
        context = LambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.memory_mb,
            invoked_function_arn=self.arn,
            aws_request_id=rid,
            log_stream_name=self.log_stream,
            deadline_epoch_ms=deadline_epoch_ms,
        )
        try:
            reply = (Kind.RESULT, self.dumps(self.handler(event, context)).encode())
        except (TypeError, ValueError, RecursionError) as exc:
            payload = error_payload(exc)
            if "JSON serializable" in str(exc):
                payload["errorType"] = "Runtime.MarshalError"
            log_error(payload, rid)
            reply = (Kind.ERROR, json.dumps(payload).encode())
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes a function error
            payload = error_payload(exc)
            log_error(payload, rid)
            reply = (Kind.ERROR, json.dumps(payload).encode())
        sys.stdout.flush()
        return reply


def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader = FrameReader(sock)
    first = reader.read()
    if first is None or first[0] is not Kind.SETUP:
        return
    setup: dict[str, Any] = json.loads(first[1])
    for path in reversed(setup.get("sys_path", [])):
        if path not in sys.path:
            sys.path.insert(0, path)
    started = time.perf_counter()
    try:
        handler = load_handler(setup["handler"])
    except Exception as exc:  # noqa: BLE001 - reported to the gateway like Runtime.ImportModuleError
        payload = error_payload(exc, "Runtime.ImportModuleError")
        log_error(payload)
        write_frame(sock, Kind.INIT_ERROR, json.dumps(payload).encode())
        return
    runtime = Runtime(setup, handler)
    write_frame(sock, Kind.READY, str((time.perf_counter() - started) * 1000).encode())
    while True:
        try:
            frame = reader.read()
        except OSError:
            return
        if frame is None:
            return  # the gateway went away: an environment never outlives its gateway
        kind, message = frame
        if kind is not Kind.INVOKE:
            continue
        # Frames come only from our own gateway over a private socket pair.
        event, rid, deadline_epoch_ms = pickle.loads(message)  # noqa: S301
        reply_kind, reply = runtime.invoke(event, rid, deadline_epoch_ms)
        try:
            write_frame(sock, reply_kind, reply)
        except OSError:
            return


def main() -> None:
    # Ctrl-C reaches the whole process group; the gateway reports the shutdown.
    with contextlib.suppress(KeyboardInterrupt):
        serve(int(sys.argv[1]))


if __name__ == "__main__":
    main()
