"""TCP relaying for the userspace proxy with splice(2): bytes never enter Python.

Each direction of a proxied connection owns a pipe. When the source socket is readable,
`os.splice` moves what it has into the pipe (at most the pipe's size), then from the pipe
into the destination socket. If the destination cannot take it all, the direction stops
reading its source and waits for the destination to become writable; so per direction
at most one pipe (`PIPE_SIZE`) is buffered, in the kernel, and a slow reader slows the
writer down (backpressure) without any copy through user space.

Design choice: plain non-blocking sockets driven by the event loop's add_reader /
add_writer instead of asyncio transports, which would copy every chunk into Python
bytes twice; an EOF is forwarded as a half-close (shutdown SHUT_WR), and the connection
closes when both directions are done or either one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import struct
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PIPE_SIZE = 1024 * 1024  # per direction; the kernel allocates its pages only as data waits
F_SETPIPE_SZ = 1031
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
ACCEPT_BATCH = 64
READ_ROUNDS = 4


def _make_pipe() -> tuple[int, int]:
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # over pipe-max-size or the user's pipe quota: keep the default
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
    return r, w


class _Direction:
    """src -> pipe -> dst for one direction of a connection."""

    def __init__(self, conn: SplicedConnection, src: socket.socket, dst: socket.socket) -> None:
        self.conn, self.loop = conn, conn.loop
        self.src, self.dst = src.fileno(), dst.fileno()
        self.dst_sock = dst
        self.r, self.w = _make_pipe()
        self.pending = 0  # bytes in the pipe
        self.reading = self.writing = self.done = False

    def start(self) -> None:
        self._read(True)

    def _read(self, on: bool) -> None:
        if on and not self.reading:
            self.loop.add_reader(self.src, self._readable)
        elif not on and self.reading:
            self.loop.remove_reader(self.src)
        self.reading = on

    def _write(self, on: bool) -> None:
        if on and not self.writing:
            self.loop.add_writer(self.dst, self._flush)
        elif not on and self.writing:
            self.loop.remove_writer(self.dst)
        self.writing = on

    def _readable(self) -> None:
        for _ in range(READ_ROUNDS):  # a few rounds per wake-up saves epoll round trips
            try:
                n = os.splice(self.src, self.w, PIPE_SIZE, flags=SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.conn.close(abort=True)
                return
            self.conn.last_active = time.monotonic()
            if n == 0:  # EOF from the source
                self._read(False)
                self._finish()
                return
            self.pending += n
            self._flush()
            if self.pending or not self.reading or n < PIPE_SIZE // 4:  # small: likely all there was
                return

    def _flush(self) -> None:
        while self.pending:
            try:
                n = os.splice(self.r, self.dst, self.pending, flags=SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                self._read(False)  # backpressure: the destination is full
                self._write(True)
                return
            except OSError:
                self.conn.close(abort=True)
                return
            self.pending -= n
        self._write(False)
        if not self.done and not self.conn.closed:
            self._read(True)

    def _finish(self) -> None:
        """The source ended and the pipe is empty: half-close the destination."""
        self.done = True
        with contextlib.suppress(OSError):
            self.dst_sock.shutdown(socket.SHUT_WR)
        self.conn.direction_done()

    def stop(self) -> None:
        self._read(False)
        self._write(False)
        os.close(self.r)
        os.close(self.w)


class SplicedConnection:
    """One client socket, later its backend socket, and the two directions between them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: socket.socket,
                 on_close: Callable[[], None]) -> None:
        self.loop, self.client, self.on_close = loop, client, on_close
        self.upstream: socket.socket | None = None
        self.directions: list[_Direction] = []
        self.closed = False
        self.last_active = time.monotonic()

    def attach(self, upstream: socket.socket) -> None:
        """The backend is connected: start relaying both ways."""
        self.upstream = upstream
        try:
            self.directions = [_Direction(self, self.client, upstream), _Direction(self, upstream, self.client)]
        except OSError as e:  # out of file descriptors for the pipes
            log.warning("cannot relay a connection: %s", e)
            for d in self.directions:
                d.stop()
            self.directions = []
            self.close(abort=True)
            return
        for d in self.directions:
            d.start()

    def buffered(self) -> int:
        return sum(d.pending for d in self.directions)

    def direction_done(self) -> None:
        if all(d.done for d in self.directions):
            self.close()

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for d in self.directions:
            d.stop()
        for s in (self.client, self.upstream):
            if s is None:
                continue
            if abort:
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.on_close()


class TcpListener:
    """A non-blocking listening socket; every accepted socket goes to `on_accept`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ip: str, port: int,
                 on_accept: Callable[[socket.socket, tuple[str, int], str], None], backlog: int = 1024) -> None:
        self.loop, self.ip, self.on_accept = loop, ip, on_accept
        self.sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((ip, port))
            self.sock.listen(backlog)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.closed = False
        loop.add_reader(self.sock.fileno(), self._ready)

    def _ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE, ENFILE ...: stop accepting for a second
                log.warning("accept on %s: %s; pausing for 1 s", self.ip, e.strerror)
                self.loop.remove_reader(self.sock.fileno())
                self.loop.call_later(1.0, self._resume)
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.on_accept(conn, peer, conn.getsockname()[0])

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def close(self) -> None:
        """Stop accepting; connections already accepted are not touched."""
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


async def connect(ip: str, port: int, timeout: float) -> socket.socket:
    """A connected non-blocking socket to ip:port; OSError or TimeoutError otherwise."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock
