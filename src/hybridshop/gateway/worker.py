"""One Lambda execution environment: a child process that imports a handler once and serves
invocations one at a time, keeping module state warm in between (like a warm Lambda).

Run as ``python -m hybridshop.gateway.worker <fd>`` by ``runtime.Environment``; ``fd`` is
the worker's end of a socket pair carrying length-prefixed frames: a JSON setup, then one
pickled ``(event, aws_request_id, deadline_ms)`` per invocation; replies are one kind byte
plus JSON text (plain ``os.read``/``os.write``: no multiprocessing machinery per request). Stdout/stderr stay free for the
handler's own output, which the gateway prefixes with the function name, as CloudWatch
would group it by function.

Like the AWS runtime, the return value is serialised to JSON here: a handler returning
something JSON cannot express fails the same way it would on AWS.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import sys
import time
import traceback
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


def read_frame(fd: int, pending: bytearray) -> bytes | None:
    """One length-prefixed frame from ``fd`` (None at EOF); ``pending`` keeps extra bytes."""
    while True:
        if len(pending) >= 4:
            size = int.from_bytes(pending[:4], "big")
            if len(pending) >= 4 + size:
                frame = bytes(pending[4 : 4 + size])
                del pending[: 4 + size]
                return frame
        data = os.read(fd, 1 << 16)
        if not data:
            return None
        pending += data


def write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(len(payload).to_bytes(4, "big") + payload)
    while view:
        view = view[os.write(fd, view) :]


def serve(fd: int) -> None:
    pending = bytearray()
    first = read_frame(fd, pending)
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
        write_frame(fd, b"i" + json.dumps(payload).encode())
        return
    write_frame(fd, b"r" + str((time.perf_counter() - started) * 1000).encode())

    function_name = setup["function_name"]
    memory_mb = setup["memory_mb"]
    arn = setup["arn"]
    log_stream = setup["log_stream"]
    loads = pickle.loads
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    stdout = sys.stdout
    while True:
        try:
            message = read_frame(fd, pending)
        except OSError:
            return
        if message is None:
            return  # the gateway went away: an environment never outlives its gateway
        event, aws_request_id, deadline_ms = loads(message)
        context = LambdaContext(
            function_name=function_name,
            memory_limit_in_mb=memory_mb,
            invoked_function_arn=arn,
            aws_request_id=aws_request_id,
            log_stream_name=log_stream,
            deadline_epoch_ms=deadline_ms,
        )
        try:
            reply = b"o" + dumps(handler(event, context)).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            payload = error_payload(exc)
            if "JSON serializable" in str(exc):
                payload["errorType"] = "Runtime.MarshalError"
            log_error(payload, aws_request_id)
            reply = b"e" + json.dumps(payload).encode()
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes a function error
            payload = error_payload(exc)
            log_error(payload, aws_request_id)
            reply = b"e" + json.dumps(payload).encode()
        stdout.flush()
        try:
            write_frame(fd, reply)
        except OSError:
            return


def main() -> None:
    fd = int(sys.argv[1])
    try:
        serve(fd)
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group; the gateway reports the shutdown
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
