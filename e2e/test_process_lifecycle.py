"""e2e: packaging and process lifecycle of `ingressctl run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

from .harness import ROOT, LocalController


def test_wheel_ships_the_templates_inside_the_package(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("ingressctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("nginx.conf.j2", "server.j2", "location.j2", "upstream.j2"):
        assert f"ingressctl/templates/{template}" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_sigterm_stops_nginx_gracefully_and_exits_0(tmp_path: Path):
    ctl = LocalController(tmp_path)
    ctl.start()
    nginx = ctl.nginx_pid()
    assert ctl.proc is not None
    os.kill(ctl.proc.pid, signal.SIGTERM)
    assert ctl.proc.wait(timeout=20) == 0
    try:
        os.kill(nginx, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "nginx must not outlive the controller"


def test_nginx_does_not_outlive_a_killed_controller(tmp_path: Path):
    ctl = LocalController(tmp_path)
    ctl.start()
    nginx = ctl.nginx_pid()
    assert ctl.proc is not None
    os.kill(ctl.proc.pid, signal.SIGKILL)  # no chance to stop nginx itself
    ctl.proc.wait(timeout=10)
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(nginx, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.killpg(nginx, signal.SIGKILL)
        raise AssertionError("nginx kept running after its controller was killed")
    ctl.proc = None
    ctl.stop()
