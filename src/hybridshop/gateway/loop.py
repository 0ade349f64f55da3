"""A minimal single-threaded event loop (epoll via ``selectors``) with timers.

Why not asyncio: the gateway's hot path is "bytes in from a client socket, bytes out to a
worker socket, and back"; plain callbacks on readiness cost a fraction of asyncio's
transports, futures and task wake-ups, and with one thread there is no GIL hand-off
between connection threads. Everything registered here runs on the loop thread; other
threads talk to it only through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

Callback = Callable[[], None]
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.on_error = on_error
        self._selector = selectors.DefaultSelector()
        self._handlers: dict[int, list[Callback | None]] = {}  # fd -> [reader, writer]
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._calls: deque[Callback] = deque()
        self._calls_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self.add_reader(self._wake_r.fileno(), self._drain_wake)

    # -- readiness -------------------------------------------------------------------------

    def _update(self, fd: int, reader: Callback | None, writer: Callback | None) -> None:
        mask = (_READ if reader else 0) | (_WRITE if writer else 0)
        known = fd in self._handlers
        if not mask:
            if known:
                del self._handlers[fd]
                self._selector.unregister(fd)
            return
        self._handlers[fd] = [reader, writer]
        if known:
            self._selector.modify(fd, mask)
        else:
            self._selector.register(fd, mask)

    def add_reader(self, fd: int, callback: Callback) -> None:
        writer = self._handlers.get(fd, [None, None])[1]
        self._update(fd, callback, writer)

    def remove_reader(self, fd: int) -> None:
        if fd in self._handlers:
            self._update(fd, None, self._handlers[fd][1])

    def add_writer(self, fd: int, callback: Callback) -> None:
        reader = self._handlers.get(fd, [None, None])[0]
        self._update(fd, reader, callback)

    def remove_writer(self, fd: int) -> None:
        if fd in self._handlers:
            self._update(fd, self._handlers[fd][0], None)

    def forget(self, fd: int) -> None:
        """Drop every callback of ``fd`` (call before closing it)."""
        self._update(fd, None, None)

    # -- time ------------------------------------------------------------------------------

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_soon_threadsafe(self, callback: Callback) -> None:
        with self._calls_lock:
            self._calls.append(callback)
        with contextlib.suppress(OSError):  # full pipe: a wake-up is already pending
            self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    # -- running ---------------------------------------------------------------------------

    def stop(self) -> None:
        self.call_soon_threadsafe(self._set_stopping)

    def _set_stopping(self) -> None:
        self._stopping = True

    def run(self) -> None:
        select = self._selector.select
        handlers = self._handlers
        timers = self._timers
        calls = self._calls
        while not self._stopping:
            timeout = 1.0
            if timers:
                timeout = min(timeout, max(0.0, timers[0][0] - time.monotonic()))
            if calls:
                timeout = 0.0
            for key, mask in select(timeout):
                pair = handlers.get(key.fd)
                if pair is None:
                    continue
                try:
                    if mask & _READ and pair[0] is not None:
                        pair[0]()
                        pair = handlers.get(key.fd)
                        if pair is None:
                            continue
                    if mask & _WRITE and pair[1] is not None:
                        pair[1]()
                except Exception as exc:  # noqa: BLE001 - one bad callback must not stop serving
                    self._report(exc)
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    timer = heapq.heappop(timers)[2]
                    if not timer.cancelled:
                        self._call(timer.callback)
            if calls:
                with self._calls_lock:
                    batch = list(calls)
                    calls.clear()
                for callback in batch:
                    self._call(callback)

    def _call(self, callback: Callback) -> None:
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - one bad callback must not stop serving
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        if self.on_error is not None:
            with contextlib.suppress(Exception):
                self.on_error(exc)

    def close(self) -> None:
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


class SocketWriter:
    """In-order writes to a non-blocking socket from the loop thread: what the kernel does
    not take at once is kept and sent when the socket becomes writable.

    ``on_error`` runs when the socket fails (the owner closes or marks it dead);
    ``on_drained`` runs once kept bytes have all gone out.
    """

    __slots__ = ("_on_drained", "_on_error", "fd", "loop", "pending", "sock")

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        *,
        on_error: Callback,
        on_drained: Callback | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.pending = b""
        self._on_error = on_error
        self._on_drained = on_drained

    def write(self, data: bytes) -> None:
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._on_error()
            return
        self.keep(data[sent:])

    def keep(self, rest: bytes) -> None:
        """Send ``rest`` (what follows the bytes the socket already took) when writable."""
        if rest:
            self.pending = rest
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except BlockingIOError:
            return
        except OSError:
            self.pending = b""
            self.loop.remove_writer(self.fd)
            self._on_error()
            return
        self.pending = self.pending[sent:]
        if not self.pending:
            self.loop.remove_writer(self.fd)
            if self._on_drained is not None:
                self._on_drained()
