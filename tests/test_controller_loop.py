"""The sync loop's failure handling, with a recording nginx (issue 11, items 1 and 8).

nginx failing to start or reload is nginx's error, not the templates': it is logged as
nginx's and no other template set is tried. A sync loop that ends is a failed /healthz.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.nginx.process import ApplyResult
from ingressctl.store import Store

BIND_ERROR = "nginx exited (code 1): [emerg] bind() to 127.0.0.1:8080 failed (98: Address already in use)"


class FailingNginx:
    """Records apply calls; nginx -t passes, starting nginx fails."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.max_draining = 0

    def apply(self, text: str, config_id: str, files: Mapping[str, bytes],
              lua_files: frozenset[str] = frozenset()) -> ApplyResult:
        self.applied.append(config_id)
        return ApplyResult(True, False, config_id, BIND_ERROR)

    def running(self) -> bool:
        return False


def test_nginx_failing_is_reported_as_nginx_never_as_a_template_refusal(tmp_path: Path, caplog):
    (tmp_path / "templates").mkdir()
    nginx = FailingNginx()
    ctl = Controller(Store(), ControllerOptions(state_dir=tmp_path, template_dir=tmp_path / "templates"),
                     nginx)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        outcome = ctl.sync()
    assert not outcome.ok
    assert len(nginx.applied) == 1, "another template set was tried for an error that is nginx's"
    assert f"nginx failed: {BIND_ERROR}" in caplog.text
    assert "refused" not in caplog.text


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_sync_loop_that_ends_fails_healthz_and_an_exception_does_not_end_it(tmp_path: Path):
    ctl = Controller(Store(), ControllerOptions(state_dir=tmp_path), FailingNginx())  # type: ignore[arg-type]
    steps: list[bool] = []
    second = threading.Event()

    def step(woke: bool) -> None:
        steps.append(woke)
        if len(steps) == 1:
            raise RuntimeError("a bug in one sync")
        second.set()
        raise SystemExit  # ends the thread, as nothing but a bug can

    ctl._step = step  # type: ignore[method-assign]
    ctl._wake.set()
    ctl._thread = threading.Thread(target=ctl._run, daemon=True)
    assert ctl.health()[0]
    ctl._thread.start()
    assert second.wait(timeout=10), "the loop ended with the first exception"
    ctl._thread.join(timeout=10)
    assert ctl.health() == (False, "the sync loop has stopped")


@pytest.mark.parametrize("draining, failing_for, ready", [
    (False, None, (True, "configuration live")),
    (True, None, (False, "shutting down")),
    (False, 5.0, (True, "configuration live")),  # failing, but not for longer than stale_after
])
def test_readiness(tmp_path: Path, draining: bool, failing_for: float | None, ready: tuple[bool, str]):
    import time

    ctl = Controller(Store(), ControllerOptions(state_dir=tmp_path, stale_after=60), FailingNginx())  # type: ignore[arg-type]
    ctl.live_since = time.monotonic()
    ctl.draining = draining
    ctl.failing_since = None if failing_for is None else time.monotonic() - failing_for
    assert ctl.readiness() == ready


def test_stopping_does_not_run_another_sync(tmp_path: Path) -> None:
    """stop() wakes the loop to end it, not to sync once more (26 s at 30,000 Ingresses, issue 18 §7)."""
    ctl = Controller(Store(), ControllerOptions(state_dir=tmp_path), FailingNginx())  # type: ignore[arg-type]
    steps: list[bool] = []
    waiting = threading.Event()
    real_wait = ctl._wake.wait

    def wait(timeout: float | None = None) -> bool:
        waiting.set()
        return real_wait(timeout)

    ctl._wake.wait = wait  # type: ignore[method-assign]
    ctl._step = steps.append  # type: ignore[method-assign,assignment]
    ctl._thread = threading.Thread(target=ctl._run, daemon=True)
    ctl._thread.start()
    assert waiting.wait(timeout=10)
    ctl._stop.set()
    ctl._wake.set()
    ctl._thread.join(timeout=10)
    assert not ctl._thread.is_alive() and steps == []


def test_the_sync_loop_collects_the_old_generation_itself() -> None:
    """Python's own full collections (0.35 s at 10,000 Ingresses) land in the middle of
    changes; while the loop runs it makes them, when idle or after a sync."""
    import gc

    from ingressctl.controller import OldGeneration

    before = gc.get_threshold()
    old = OldGeneration(idle_every=0.0, latest=3600.0)
    old.take_over()
    try:
        assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] >= 1 << 30
        full = gc.get_stats()[2]["collections"]
        old.synced()  # none for an hour is not yet due
        assert gc.get_stats()[2]["collections"] == full
        old.idle()  # idle, and due
        assert gc.get_stats()[2]["collections"] == full + 1
    finally:
        old.give_back()
    assert gc.get_threshold() == before
    old.idle()  # not running: leaves collections to Python
    assert gc.get_stats()[2]["collections"] == full + 1
