"""Echo the event and the context back, so tests can check exactly what a function receives."""

from __future__ import annotations

import os
from typing import Any

INIT_PID = os.getpid()
calls = 0  # module state: survives between invocations in a warm environment


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global calls
    calls += 1
    print(f"echo call {calls} for {event['requestContext']['requestId']}")
    return {
        "event": event,
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "identity": context.identity,
            "client_context": context.client_context,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
        "env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "_HANDLER", "GW_"))},
        "calls": calls,
        "pid": os.getpid(),
        "init_pid": INIT_PID,
    }
