"""Supervision for ``hybridshop up``: notice a component that dies, say why, restart it.

Contract
--------
A ``Component`` is something ``up`` runs (PostgreSQL, the API gateway, the shop, the
replicator) behind four calls: ``start()`` (raises if it cannot start), ``failure()`` (None
while it runs, else one line saying how it ended), ``output_tail()`` (its last lines of output,
to show with the failure) and ``stop()`` (idempotent; also called on a dead component).

The ``Supervisor`` starts components in order, then ``check()`` (called every
``poll_interval_s`` by ``run``) does, for each component:

- **dies** -> reported at once (``Event`` kind ``died``, with the failure and the output
  tail), then restarted after a backoff that doubles from ``backoff_initial_s`` to
  ``backoff_max_s``; a restart that raises counts as another failure;
- **fails ``max_failures`` times within ``window_s``** -> given up on (``gave-up``, with the
  last error and what to do): an *essential* component (PostgreSQL, the API) then stops the
  whole stack and ``run`` returns False, so ``up`` exits non-zero; a non-essential one (shop,
  replicator) stays down while the rest keeps serving, and ``status()`` says so; it is tried
  again every ``retry_failed_s`` (``retrying``, then ``still-failed`` or ``restarted``), so it
  resumes by itself once its cause is fixed;
- **runs ``healthy_after_s`` after a restart** -> ``recovered``; its failure count resets.

A *watch* (``watch(name, every_s, check)``) is a periodic check of something no component's
liveness shows (WAL piling up behind a stopped replicator): whatever message ``check``
returns is reported as an ``alarm``; a watch that raises is ignored until its next turn.

Every event goes to the ``report`` callback as it happens; ``status()`` is the honest state
of every component (running / restarting in N s / failed) for ``up`` to print.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Component(Protocol):
    name: str
    essential: bool

    def start(self) -> None: ...
    def failure(self) -> str | None: ...
    def output_tail(self, lines: int = 12) -> str: ...
    def stop(self) -> None: ...
    def describe(self) -> str: ...


@dataclass(frozen=True)
class RestartPolicy:
    max_failures: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 15.0
    healthy_after_s: float = 10.0
    # A component given up on that `up` can run without (the replicator) is tried again this
    # often, so it resumes by itself once its cause is fixed (0: never).
    retry_failed_s: float = 60.0


@dataclass(frozen=True)
class Event:
    component: str
    # started | died | restarting | start-failed | restarted | recovered | gave-up |
    # retrying (given up on, tried again every ``retry_failed_s``) | still-failed (after a
    # retry, or repeated every ``remind_every_s`` while given up for good) | stop-failed |
    # alarm (a watch's warning, e.g. WAL piling up behind a stopped replicator)
    kind: str
    message: str
    output: str = ""


@dataclass
class _Slot:
    component: Component
    state: str = "stopped"  # running | waiting | failed | stopped
    failures: deque[float] = field(default_factory=deque)
    restart_at: float = 0.0
    backoff_s: float = 0.0
    started_at: float = 0.0
    restarted: bool = False
    retrying: bool = False  # started again after being given up on
    last_error: str | None = None


class Supervisor:
    def __init__(
        self,
        report: Callable[[Event], None],
        policy: RestartPolicy | None = None,
        poll_interval_s: float = 0.5,
        remind_every_s: float = 300.0,
    ) -> None:
        self.report = report
        self.policy = policy or RestartPolicy()
        self.poll_interval_s = poll_interval_s
        self.remind_every_s = remind_every_s  # repeat "still failed" while degraded
        self._reminded_at = 0.0
        self._slots: list[_Slot] = []
        self._watches: list[list[Any]] = []  # [name, every_s, check, due]
        self._lock = threading.Lock()
        self.fatal: Event | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self, component: Component, *, already_running: bool = False) -> None:
        """Start one component now (raises as its ``start`` does) and supervise it;
        ``already_running``: supervise one started elsewhere (PostgreSQL by ``ensure_database``)."""
        if not already_running:
            component.start()
        slot = _Slot(component, state="running", started_at=time.monotonic())
        with self._lock:
            self._slots.append(slot)
        self.report(Event(component.name, "started", component.describe()))

    def watch(self, name: str, every_s: float, check: Callable[[], str | None]) -> None:
        """Run ``check`` every ``every_s`` from ``check()``; report what it returns."""
        self._watches.append([name, every_s, check, time.monotonic() + every_s])

    def run(self, stop: threading.Event) -> bool:
        """Supervise until ``stop`` is set (True) or an essential component is given up on
        (False)."""
        while not stop.wait(self.poll_interval_s):
            self.check()
            if self.fatal is not None:
                return False
        return True

    def stop_all(self) -> None:
        """Stop every component, last started first."""
        with self._lock:
            slots = list(reversed(self._slots))
            self._slots.clear()
        for slot in slots:
            try:
                slot.component.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                self.report(Event(slot.component.name, "stop-failed", str(exc)))

    # --- the loop ---------------------------------------------------------------------------
    def check(self) -> None:
        now = time.monotonic()
        for slot in list(self._slots):
            if slot.state == "running":
                self._check_running(slot, now)
            elif slot.state == "waiting" and now >= slot.restart_at:
                self._restart(slot, now)
            elif slot.state == "failed" and slot.retrying and now >= slot.restart_at:
                self.report(Event(slot.component.name, "retrying", "trying it again"))
                self._restart(slot, now)
        for entry in self._watches:
            name, every_s, check, due = entry
            if now >= due:
                entry[3] = now + every_s
                try:
                    message = check()
                except Exception:  # noqa: BLE001 - a watch never takes the supervisor down
                    message = None
                if message:
                    self.report(Event(name, "alarm", message))
        failed = [slot for slot in self._slots if slot.state == "failed" and not slot.retrying]
        if failed and now - self._reminded_at >= self.remind_every_s:
            if self._reminded_at:
                for slot in failed:
                    self.report(
                        Event(slot.component.name, "still-failed", f"last error: {slot.last_error}")
                    )
            self._reminded_at = now

    def _check_running(self, slot: _Slot, now: float) -> None:
        component = slot.component
        failure = component.failure()
        if failure is None:
            if slot.restarted and now - slot.started_at >= self.policy.healthy_after_s:
                slot.restarted = False
                slot.retrying = False
                slot.failures.clear()
                slot.backoff_s = 0.0
                self.report(Event(component.name, "recovered", "running normally again"))
            return
        tail = component.output_tail()
        with contextlib.suppress(Exception):
            component.stop()  # reap what is left (a process group, a listening socket)
        self.report(Event(component.name, "died", failure, tail))
        self._failed(slot, now, failure)

    def _failed(self, slot: _Slot, now: float, error: str) -> None:
        policy = self.policy
        slot.last_error = error
        slot.failures.append(now)
        while slot.failures and now - slot.failures[0] > policy.window_s:
            slot.failures.popleft()
        name = slot.component.name
        if slot.retrying:  # tried again after giving up: still broken, wait for the next try
            slot.state = "failed"
            slot.restart_at = now + policy.retry_failed_s
            self.report(
                Event(
                    name, "still-failed", f"{error}; trying again in {policy.retry_failed_s:.0f}s"
                )
            )
            return
        if len(slot.failures) >= policy.max_failures:
            slot.state = "failed"
            if slot.component.essential:
                advice = "hybridshop cannot run without it: stopping everything."
            elif policy.retry_failed_s > 0:
                advice = (
                    "the rest keeps running without it; fix the cause and it is started "
                    f"again within {policy.retry_failed_s:.0f}s (or restart `up`)."
                )
                slot.retrying = True
                slot.restart_at = now + policy.retry_failed_s
            else:
                advice = "the rest keeps running without it; fix the cause and restart `up`."
            event = Event(
                name,
                "gave-up",
                f"gave up on {name} after {len(slot.failures)} failures in "
                f"{policy.window_s:.0f}s (last: {error}); {advice}",
            )
            self.report(event)
            if slot.component.essential:
                self.fatal = event
            return
        slot.backoff_s = min(
            policy.backoff_max_s, slot.backoff_s * 2 if slot.backoff_s else policy.backoff_initial_s
        )
        slot.state = "waiting"
        slot.restart_at = now + slot.backoff_s
        self.report(
            Event(
                name,
                "restarting",
                f"restarting in {slot.backoff_s:.1f}s "
                f"(failure {len(slot.failures)} of {policy.max_failures} allowed in "
                f"{policy.window_s:.0f}s)",
            )
        )

    def _restart(self, slot: _Slot, now: float) -> None:
        component = slot.component
        try:
            component.start()
        except Exception as exc:  # noqa: BLE001 - a failed restart is one more failure
            error = f"restart failed: {_one_line(exc)}"
            self.report(Event(component.name, "start-failed", error, component.output_tail()))
            self._failed(slot, time.monotonic(), error)
            return
        slot.state = "running"
        slot.started_at = time.monotonic()
        slot.restarted = True
        self.report(Event(component.name, "restarted", component.describe()))

    # --- what up prints ----------------------------------------------------------------------
    def status(self) -> list[tuple[str, str, str]]:
        """(component, state, detail) for each component, in start order."""
        now = time.monotonic()
        out = []
        for slot in self._slots:
            name = slot.component.name
            if slot.state == "running":
                detail = slot.component.describe()
                if slot.failures:
                    detail += f" ({len(slot.failures)} recent failure(s))"
                out.append((name, "running", detail))
            elif slot.state == "waiting":
                out.append(
                    (
                        name,
                        "restarting",
                        f"in {max(0.0, slot.restart_at - now):.1f}s; last error: {slot.last_error}",
                    )
                )
            else:
                out.append((name, "FAILED", f"given up; last error: {slot.last_error}"))
        return out

    def healthy(self) -> bool:
        return all(slot.state == "running" for slot in self._slots)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    return first if len(first) <= 300 else first[:297] + "..."


def tail_lines(path: Path, offset: int, lines: int) -> str:
    """The last ``lines`` lines written to ``path`` after byte ``offset``."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            start = max(offset, size - 64 * 1024)
            fh.seek(start)
            data = fh.read()
    except OSError:
        return ""
    text = data.decode(errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


# --- the kinds of components up runs -----------------------------------------------------------
class ProcessComponent:
    """A child process (its own process group), output appended to ``log_file``."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_file: Path,
        *,
        essential: bool = False,
        env: dict[str, str] | None = None,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.name = name
        self.args = args
        self.log_file = log_file
        self.essential = essential
        self.env = env
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self._offset = out.tell()
            self.proc = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # Ctrl-C in up's terminal reaches up, not the child
                preexec_fn=_die_with_parent(os.getpid()),
            )

    def failure(self) -> str | None:
        if self.proc is None:
            return "not started"
        code = self.proc.poll()
        if code is None:
            return None
        if code < 0:
            try:
                how = signal.Signals(-code).name
            except ValueError:
                how = f"signal {-code}"
            return f"killed by {how} (pid {self.proc.pid})"
        return f"exited with code {code} (pid {self.proc.pid})"

    def output_tail(self, lines: int = 12) -> str:
        return tail_lines(self.log_file, self._offset, lines)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        ended = self.failure()
        if ended is not None:
            self._mark(f"{self.name} {ended}")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left in its group
        if ended is None:
            self._mark(f"{self.name} stopped by the supervisor (exit code {proc.returncode})")
        self.proc = None

    def _mark(self, text: str) -> None:
        """A line in the log saying how a run ended (the process may not have said)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError), self.log_file.open("a") as out:
            out.write(f"{stamp} [hybridshop up] {text}\n")

    def describe(self) -> str:
        pid = self.proc.pid if self.proc is not None else "-"
        return f"pid {pid}, log {self.log_file}"


class ThreadComponent:
    """A server running on threads of this process (the gateway, the shop): ``factory``
    builds and starts one, ``alive`` says whether it still serves, ``stop`` stops it. Threads
    that die with an exception are caught by a ``threading.excepthook`` so the traceback can
    be shown."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], Any],
        alive: Callable[[Any], bool],
        *,
        threads: tuple[str, ...],
        essential: bool = False,
        describe: Callable[[Any], str] | None = None,
    ) -> None:
        self.name = name
        self.threads = threads  # names of the threads whose exceptions are this component's
        self.essential = essential
        self.factory = factory
        self.alive = alive
        self._describe = describe
        self.server: Any = None
        self._errors: list[str] = []
        self._hook_installed = False

    def start(self) -> None:
        self._install_hook()
        self._errors.clear()
        self.server = self.factory()

    def _install_hook(self) -> None:
        if self._hook_installed:
            return
        previous = threading.excepthook
        component = self

        def hook(args: threading.ExceptHookArgs) -> None:
            name = args.thread.name if args.thread is not None else ""
            if not name.startswith(component.threads):
                previous(args)
                return
            component._errors.append(
                "".join(
                    traceback.format_exception(
                        args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback
                    )
                )
            )
            previous(args)

        threading.excepthook = hook
        self._hook_installed = True

    def failure(self) -> str | None:
        if self.server is None:
            return "not started"
        if self.alive(self.server):
            return None
        if self._errors:
            return "its thread raised " + self._errors[-1].strip().splitlines()[-1]
        return "stopped serving"

    def output_tail(self, lines: int = 12) -> str:
        return "\n".join("".join(self._errors).strip().splitlines()[-lines:])

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def describe(self) -> str:
        if self._describe is not None and self.server is not None:
            return self._describe(self.server)
        return "in-process"


class DaemonComponent:
    """A server that detaches from us (PostgreSQL, started by ``pg_ctl``): alive while the
    process whose pid ``pid()`` reads (``postmaster.pid``) exists."""

    def __init__(
        self,
        name: str,
        start: Callable[[], object],
        pid: Callable[[], int | None],
        log_file: Path,
        *,
        stop: Callable[[], object] | None = None,
        essential: bool = True,
    ) -> None:
        self.name = name
        self.essential = essential
        self._start, self._pid, self._stop = start, pid, stop
        self.log_file = log_file
        self._offset = _size(log_file)
        self._last_pid: int | None = None

    def start(self) -> None:
        self._offset = _size(self.log_file)
        self._start()
        self._last_pid = self._pid()

    def failure(self) -> str | None:
        pid = self._pid()
        if pid is None:
            return f"is not running (pid {self._last_pid} gone, no pid file)"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"process {pid} is gone"
        except PermissionError:
            pass  # exists, owned by the service user
        self._last_pid = pid
        return None

    def output_tail(self, lines: int = 12) -> str:
        return tail_lines(self.log_file, self._offset, lines)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()

    def describe(self) -> str:
        return f"pid {self._pid() or self._last_pid}, log {self.log_file}"


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """In the child, before exec: ask Linux to send SIGTERM when ``up`` dies, even by
    ``kill -9`` (``PR_SET_PDEATHSIG``), so no orphan keeps the slot or the warehouse file
    and blocks the next ``up``. ``up`` starts children from its main thread, which lives as
    long as it does. Elsewhere than Linux: None (nothing to do)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def set_deathsig() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # up died between fork and prctl
            os._exit(1)

    return set_deathsig


_PR_SET_PDEATHSIG = 1


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
