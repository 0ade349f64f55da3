"""The protocol between the gateway and its execution environments, in one place.

Each environment is a child process (``worker``) holding one end of a private socket pair.
Messages are frames: a 4-byte big-endian payload length, one byte naming the kind of frame,
then the payload. The conversation, in order:

1. gateway → worker ``SETUP``: JSON (handler, function name, memory, timeout, ARN, ...).
2. worker → gateway ``READY`` (init milliseconds, as text) or ``INIT_ERROR`` (JSON error
   object, like ``Runtime.ImportModuleError``), after importing the handler once.
3. per invocation, gateway → worker ``INVOKE``: pickled ``(event, aws_request_id,
   deadline_epoch_ms)``; worker → gateway ``RESULT`` (the handler's return value as JSON
   text, serialised as the AWS runtime does) or ``ERROR`` (JSON error object).

An environment runs one invocation at a time; the gateway enforces timeouts by killing the
process, so the worker never needs a frame for them. EOF on the socket means "stop" in
either direction. Pickle is safe here: both ends are our own processes on a socket pair
nobody else holds.
"""

from __future__ import annotations

import socket
import struct
from enum import Enum

HEADER = struct.Struct(">IB")  # payload length, kind
MAX_FRAME = 64 * 1024 * 1024  # far above Lambda's 6 MB payload limits: a corrupt length


class Kind(Enum):
    SETUP = ord("S")
    READY = ord("R")
    INIT_ERROR = ord("I")
    INVOKE = ord("J")
    RESULT = ord("O")
    ERROR = ord("E")


_KINDS = {kind.value: kind for kind in Kind}


class FrameError(ValueError):
    """The peer sent bytes that are not a frame of this protocol."""


def encode(kind: Kind, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind.value) + payload


class FrameDecoder:
    """Incremental decoding for the gateway's non-blocking side: ``feed`` bytes, get frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Kind, bytes]]:
        buffer = self._buffer
        buffer += data
        frames: list[tuple[Kind, bytes]] = []
        offset = 0
        while len(buffer) - offset >= HEADER.size:
            size, code = HEADER.unpack_from(buffer, offset)
            if size > MAX_FRAME or code not in _KINDS:
                raise FrameError(f"bad frame header (kind {code}, {size} bytes)")
            end = offset + HEADER.size + size
            if len(buffer) < end:
                break
            frames.append((_KINDS[code], bytes(buffer[offset + HEADER.size : end])))
            offset = end
        if offset:
            del buffer[:offset]
        return frames


class FrameReader:
    """Blocking reads for the worker's side: one ``recv`` per frame in the usual case."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder()
        self.ready: list[tuple[Kind, bytes]] = []

    def read(self) -> tuple[Kind, bytes] | None:
        """The next frame, waiting for it; None at EOF."""
        while not self.ready:
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.ready = self.decoder.feed(data)
        return self.ready.pop(0)


def write_frame(sock: socket.socket, kind: Kind, payload: bytes) -> None:
    sock.sendall(encode(kind, payload))
