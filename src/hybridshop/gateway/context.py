"""The ``context`` object a Python Lambda handler receives, as the AWS runtime builds it.

Handlers (and Powertools) read ``aws_request_id`` for log correlation and call
``get_remaining_time_in_millis()`` to stop work before the function timeout; both must
behave as on AWS for the local stack to exercise the same code paths.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


def function_arn(name: str, region: str, account_id: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}"


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    log_stream_name: str
    deadline_epoch_ms: int  # wall clock: the gateway and the worker share this machine's clock
    function_version: str = "$LATEST"
    identity: Any = None  # only set for calls from the AWS Mobile SDK
    client_context: Any = None

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function times out (0 once past the deadline), as an int."""
        return max(0, self.deadline_epoch_ms - int(time.time() * 1000))
