"""One Lambda execution environment: a child process that imports a handler once and serves
invocations one at a time, keeping module state warm in between (like a warm Lambda).

Run as ``python -m hybridshop.gateway.worker <fd>`` by ``runtime.Environment``; ``fd`` is
the worker's end of a socket pair carrying pickled messages. Stdout/stderr stay free for the
handler's own output, which the gateway prefixes with the function name, as CloudWatch
would group it by function.

Like the AWS runtime, the return value is serialised to JSON here: a handler returning
something JSON cannot express fails the same way it would on AWS.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
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


def serve(conn: Connection) -> None:
    setup: dict[str, Any] = conn.recv()
    for path in reversed(setup.get("sys_path", [])):
        if path not in sys.path:
            sys.path.insert(0, path)
    started = time.perf_counter()
    try:
        handler = load_handler(setup["handler"])
    except Exception as exc:  # noqa: BLE001 - reported to the gateway like Runtime.ImportModuleError
        payload = error_payload(exc, "Runtime.ImportModuleError")
        log_error(payload)
        conn.send(("init_error", payload))
        return
    conn.send(("ready", (time.perf_counter() - started) * 1000))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the gateway went away: an environment never outlives its gateway
        _kind, event, aws_request_id, deadline_ms = message
        context = LambdaContext(
            function_name=setup["function_name"],
            memory_limit_in_mb=setup["memory_mb"],
            invoked_function_arn=setup["arn"],
            aws_request_id=aws_request_id,
            log_stream_name=setup["log_stream"],
            deadline_epoch_ms=deadline_ms,
        )
        try:
            result = handler(event, context)
            reply: tuple[str, Any] = ("ok", json.dumps(result, separators=(",", ":")))
        except (TypeError, ValueError, RecursionError) as exc:
            payload = error_payload(exc)
            if "JSON serializable" in str(exc):
                payload["errorType"] = "Runtime.MarshalError"
            log_error(payload, aws_request_id)
            reply = ("error", payload)
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes a function error
            payload = error_payload(exc)
            log_error(payload, aws_request_id)
            reply = ("error", payload)
        sys.stdout.flush()
        conn.send(reply)


def main() -> None:
    conn = Connection(int(sys.argv[1]))
    try:
        serve(conn)
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group; the gateway reports the shutdown
    finally:
        conn.close()


if __name__ == "__main__":
    main()
