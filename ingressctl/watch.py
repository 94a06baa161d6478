"""Directories watched with watchdog, a burst of changes coalesced into one callback.

Three parts of ingressctl follow files: the manifest directory, the override templates and
the webhook's certificate files (a Secret volume swaps a `..data` symlink rather than the
files). Each wants the same thing: after the last relevant event of a burst, wait a short
quiet period (shorter for a lone write than for a burst), then call back once, on a timer thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

IGNORED = ("opened", "closed_no_write")  # reads, not changes


def any_change(event: FileSystemEvent) -> bool:
    return event.event_type not in IGNORED


QUICK = 0.02  # seconds: a lone write's few events (create, modify, close, rename) come within this
BURST = 16  # more events than this before the callback: a burst (a checkout, a copy of many files)


class DebouncedWatch:
    """A lone write is acted on QUICK seconds after its last event; a burst of more than BURST
    events, `debounce` seconds after its last (so a checkout is read once, not per file)."""

    def __init__(self, directories: Iterable[Path], callback: Callable[[], object], debounce: float = 0.15,
                 recursive: bool = False, relevant: Callable[[FileSystemEvent], bool] = any_change) -> None:
        self.directories = sorted(set(directories))
        self.callback, self.debounce, self.recursive, self.relevant = callback, debounce, recursive, relevant
        self._observer: Any = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._events = 0  # relevant events since the callback last ran

    def start(self) -> DebouncedWatch:
        watch = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if watch.relevant(event):
                    watch.schedule()

        self._observer = Observer()
        for d in self.directories:
            self._observer.schedule(Handler(), str(d), recursive=self.recursive)
        self._observer.daemon = True
        self._observer.start()
        return self

    def schedule(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._events += 1
            delay = min(QUICK, self.debounce) if self._events <= BURST else self.debounce
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._events = 0
        self.callback()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
