"""Starting the nginx master and noticing at once when it exits.

The kernel's parent-death signal (`setpriv --pdeathsig`, prctl PR_SET_PDEATHSIG) fires when
the *thread* that forked the child exits, not the process. So every nginx is forked by one
thread that lives as long as the process (`Launcher`): a sync thread that dies from an
exception cannot take nginx with it, and a SIGKILLed controller still takes nginx down.

Each child gets a watcher thread blocked in waitpid; it calls `on_exit` the moment the
master exits (no polling), and a reader thread that copies nginx's stderr to ours while
keeping the last error lines, so a failed start is reported in nginx's own words (the pipe
is non-blocking on nginx's side: a line is dropped rather than a worker stalled).

Design choice: the launcher thread does nothing but fork; callers wait on a Future, so the
one place that owns the death signal never blocks on anything else.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO

log = logging.getLogger(__name__)

ERROR_MARKS = ("[emerg]", "[alert]", "[crit]")
_STAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: (\*\d+ )?")


class Child:
    """A running nginx master: its Popen, the last error lines it printed, its exit."""

    def __init__(self, proc: subprocess.Popen[bytes], on_exit: Callable[[Child], None] | None) -> None:
        self.proc = proc
        self.errors: collections.deque[str] = collections.deque(maxlen=5)
        self.error_count = 0  # error lines printed so far (a mark tells which are new)
        self.exited = threading.Event()
        self._reader = threading.Thread(target=self._copy_stderr, name=f"nginx-{proc.pid}-stderr", daemon=True)
        self._reader.start()
        self._on_exit = on_exit
        threading.Thread(target=self._watch, name=f"nginx-{proc.pid}-wait", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def last_error(self) -> str:
        """The last error nginx printed, without its time stamp ("[emerg] bind() to ... failed")."""
        telling = [e for e in self.errors if "still could not bind" not in e] or list(self.errors)
        return _STAMP.sub(r"\1 ", telling[-1]) if telling else ""

    def _copy_stderr(self) -> None:
        stream: IO[bytes] | None = self.proc.stderr
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace")
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            if any(m in line for m in ERROR_MARKS):
                self.errors.append(line.strip())
                self.error_count += 1
        stream.close()

    def _watch(self) -> None:
        self.proc.wait()
        self._reader.join(timeout=1.0)  # the last words of a failed start come before the exit
        self.exited.set()
        if self._on_exit is not None:
            try:
                self._on_exit(self)
            except Exception:
                log.exception("nginx exit handler failed")


class Launcher:
    """One long-lived thread that forks every nginx master (see the module docstring)."""

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[list[str], Future[subprocess.Popen[bytes]]]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="nginx-launcher", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:  # never returns: the death signal of every child is tied to this thread
            argv, future = self._requests.get()
            read_end, write_end = os.pipe()
            # nginx must never block on its error log because we are slow to read it: a full
            # pipe makes it drop the line instead (the write end is non-blocking)
            os.set_blocking(write_end, False)
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=write_end, start_new_session=True)
                proc.stderr = os.fdopen(read_end, "rb")
                future.set_result(proc)
            except Exception as e:  # handed to the caller
                os.close(read_end)
                future.set_exception(e)
            finally:
                os.close(write_end)

    def start(self, argv: list[str], on_exit: Callable[[Child], None] | None = None) -> Child:
        """Start argv in a session of its own, killed (TERM) if this process dies."""
        setpriv = shutil.which("setpriv")
        guard = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        future: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put(([*guard, *argv], future))
        return Child(future.result(timeout=30), on_exit)


_launcher: Launcher | None = None
_launcher_lock = threading.Lock()


def launcher() -> Launcher:
    """The process-wide launcher (started on first use, never stopped)."""
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = Launcher()
        return _launcher
