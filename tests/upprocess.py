"""``hybridshop up`` as a child process, as a user runs it in a terminal: its output collected
line by line (``lines``), waited on by pattern, stopped with Ctrl-C (SIGINT). One driver for
every suite that starts the whole stack (tests/cli, tests/system)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path


class UpProcess:
    def __init__(self, home: Path, args: list[str], env: Mapping[str, str] | None = None) -> None:
        """``hybridshop up <args>`` with its state in ``home``; ``env`` on top of ours (without
        our DATABASE_URL unless ``env`` sets one). A wide terminal: fewer wrapped lines."""
        self.home = home
        full_env = {**os.environ, "HYBRIDSHOP_HOME": str(home), "COLUMNS": "200", **(env or {})}
        if "DATABASE_URL" not in (env or {}):
            full_env.pop("DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hybridshop.cli.main", "up", *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90, after: int = 0) -> re.Match[str]:
        """The first line (from line ``after`` on) matching ``pattern``; fails at once if `up`
        has exited and all its output is read."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[after:]:
                found = re.search(pattern, line)
                if found:
                    return found
            self._check_alive_or_late(pattern, deadline)
            time.sleep(0.05)

    def wait_text(self, pattern: str, timeout: float = 30, after: int = 0) -> re.Match[str]:
        """Like ``wait_for`` over the text from line ``after`` on, lines joined by spaces: for a
        message the terminal wrapped (write ``\\s+`` between its words)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, " ".join(self.lines[after:]), re.S)
            if found:
                return found
            self._check_alive_or_late(pattern, deadline)
            time.sleep(0.05)

    def _check_alive_or_late(self, pattern: str, deadline: float) -> None:
        if self.proc.poll() is not None and not self._reader.is_alive():
            raise AssertionError(f"up exited ({self.proc.returncode}):\n{self.output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no output matching {pattern!r} in:\n{self.output}")

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, then its exit code (killed if it does not stop within ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        return code

    def started_pid(self, component: str) -> int:
        """The pid `up` last reported for ``component`` (started or restarted)."""
        found = re.findall(rf"{component}: (?:re)?started pid (\d+)", self.output)
        assert found, self.output
        return int(found[-1])
