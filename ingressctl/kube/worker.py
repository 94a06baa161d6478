"""A background thread that runs one step when poked, and at least every `interval` seconds.

The status publisher and the event recorder share this shape: observers poke them after a
build, leadership changes poke them, and a periodic pass repairs anything an API error left
behind. An API failure in a step is logged and retried at the next pass; it never ends the
thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicWorker:
    def __init__(self, name: str, interval: float, step: Callable[[], object],
                 on_error: Callable[[Exception], str], errors: tuple[type[Exception], ...]) -> None:
        self.name, self.interval = name, interval
        self._step, self._on_error, self._errors = step, on_error, errors
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._step()
            except self._errors as e:
                log.warning("%s: %s", self.name, self._on_error(e))
