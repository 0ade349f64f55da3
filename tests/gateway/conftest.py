"""Gateways over real HTTP on loopback, running the small handlers of ``handlers/``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybridshop.gateway.server import GatewayConfig, LocalGateway
from hybridshop.lambda_functions import FunctionSpec

HANDLERS = f"{__package__}.handlers"

ECHO = FunctionSpec(
    name="Echo",
    module=f"{HANDLERS}.echo",
    routes=("ANY /echo", "ANY /echo/{id}", "GET /echo/{id}/items/{item}", "GET /files/{path+}"),
    timeout_s=5,
    memory_mb=512,
)
BEHAVIOURS = FunctionSpec(
    name="Behaviours", module=f"{HANDLERS}.behaviours", routes=("ANY /b/{what}",), timeout_s=2
)
BROKEN = FunctionSpec(name="Broken", module=f"{HANDLERS}.broken", routes=("GET /broken",))


class LogLines:
    """Thread-safe sink for the gateway's log lines, so tests can read what it logged."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, *fragments: str, timeout: float = 5.0) -> str:
        """The log text once every fragment is in it. A function's output reaches the log
        through a reader thread, so it may land just after the HTTP response does."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(f in text for f in fragments) or time.monotonic() > deadline:
                return text
            time.sleep(0.02)


GatewayFactory = Callable[..., tuple[LocalGateway, LogLines]]


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start gateways on free ports; all are stopped (workers killed) after the test."""
    started: list[LocalGateway] = []

    def factory(**overrides: object) -> tuple[LocalGateway, LogLines]:
        log = LogLines()
        options: dict[str, object] = {
            "port": 0,
            "functions": (ECHO, BEHAVIOURS, BROKEN),
            "state_dir": tmp_path / "state",
            "log": log,
            "concurrency": 4,
        }
        options.update(overrides)
        gateway = LocalGateway(GatewayConfig(**options))  # type: ignore[arg-type]
        gateway.start()
        started.append(gateway)
        return gateway, log

    yield factory
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="module")
def shared_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalGateway, LogLines]]:
    """One gateway for the tests that only read behaviour (saves worker start-ups)."""
    log = LogLines()
    gateway = LocalGateway(
        GatewayConfig(
            port=0,
            functions=(ECHO, BEHAVIOURS, BROKEN),
            state_dir=tmp_path_factory.mktemp("gw"),
            log=log,
            env={"GW_SHARED": "yes"},
            concurrency=4,
        )
    )
    gateway.start()
    yield gateway, log
    gateway.stop()
