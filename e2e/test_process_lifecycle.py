"""e2e: packaging and process lifecycle of `ingressctl run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from .cluster import (
    CLASS,
    ApiServer,
    ClusterController,
    api,
    cluster_controllers,
    endpoint_slice,
    ingress,
    lease_holder,
    service,
    start_controller,
)
from .harness import INGRESS_CLASS, ROOT, LocalController, manifests_for_backends, request, wait_until
from .nginx_kit import MiniNginx, mini

__all__ = ["api", "cluster_controllers", "mini"]  # fixtures


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


# -- issue 11, item 1: SIGTERM drains ----------------------------------------------------------

class _SlowBackend:
    """Answers /slow after `delay` seconds, anything else at once; counts requests in flight."""

    def __init__(self, delay: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived = threading.Semaphore(0)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/slow":
                    outer.arrived.release()
                    time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_sigterm_drains_readyz_first_then_in_flight_requests_finish(tmp_path: Path):
    slow = _SlowBackend(delay=3.0)
    ctl = LocalController(tmp_path, extra_args=["--shutdown-grace-period", "1"])
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("svc.yaml", manifests_for_backends("default", "slow", [slow.port]))
    ctl.write("ing.yaml", _ingress("drain.test", "slow"))
    try:
        ctl.start()
        _sigterm_drains(ctl, slow)
    finally:
        ctl.stop()
        slow.stop()


def test_sigterm_drains_in_cluster_mode_too(tmp_path: Path, api: ApiServer,
                                            cluster_controllers: list[ClusterController]):
    slow = _SlowBackend(delay=3.0)
    try:
        api.apply(CLASS, service("slow"), endpoint_slice("slow", [slow.port]), ingress("drain", "drain.test", "slow"))
        ctl = start_controller(cluster_controllers, tmp_path, api, "r1", "--shutdown-grace-period", "1")
        _sigterm_drains(ctl, slow)
        assert lease_holder(api) == "", "the Lease is released on the way out"
    finally:
        slow.stop()


def _sigterm_drains(ctl: LocalController, slow: _SlowBackend) -> None:
    ctl.wait_for(lambda: ctl.get("drain.test", "/fast").status == 200)
    ctl.wait_live()
    results: list[int] = []

    def slow_request() -> None:
        try:
            results.append(request(ctl.http_port, "drain.test", "/slow", timeout=30).status)
        except OSError:
            results.append(0)

    clients = [threading.Thread(target=slow_request) for _ in range(5)]
    for c in clients:
        c.start()
    for _ in clients:
        assert slow.arrived.acquire(timeout=10), "the slow requests did not reach the backend"
    assert ctl.proc is not None
    nginx = ctl.nginx_pid()
    os.kill(ctl.proc.pid, signal.SIGTERM)
    wait_until(lambda: ctl.status("/readyz")[0] != 200, 5, "/readyz to fail")
    assert ctl.status("/readyz") == (503, "shutting down\n")
    assert ctl.get("drain.test", "/fast").status == 200, "a new connection during the grace period"
    for c in clients:
        c.join(timeout=30)
    assert results == [200] * 5, "in-flight requests were cut"
    assert ctl.proc.wait(timeout=30) == 0
    assert not _alive(nginx), "nginx must not outlive the controller"


def test_nginx_survives_the_thread_that_started_it(mini: MiniNginx):
    """The parent-death signal follows the thread that forked: a sync thread that dies
    (an exception) must not take nginx with it."""
    t = threading.Thread(target=mini.apply, args=("gen-1",))
    t.start()
    t.join()
    proc = mini.nginx.proc
    assert proc is not None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)  # the thread is gone; nginx must keep running
    assert request(mini.port, "x").body == b"gen-1"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _ingress(host: str, svc: str) -> str:
    return f"""\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {{name: drain, namespace: default}}
        spec:
          ingressClassName: nginx
          rules:
          - host: {host}
            http:
              paths:
              - {{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}
        """


def test_a_running_nginx_reloads_without_a_separate_nginx_t_and_a_refused_one_is_reported(
        mini: MiniNginx, monkeypatch: pytest.MonkeyPatch) -> None:
    """The common path loads each change once (SIGHUP, no nginx -t). A configuration the
    master cannot load: it prints [emerg] and keeps serving the old one; the controller sees
    that at once, puts the old file back, and runs nginx -t for the precise reason (refused:
    the search for the Ingress to blame starts from there)."""
    mini.apply("aaaaaaaaaaaa")
    tests: list[Path] = []
    real = mini.nginx.test
    monkeypatch.setattr(mini.nginx, "test", lambda conf: (tests.append(conf), real(conf))[1])
    mini.apply("bbbbbbbbbbbb")
    assert tests == [] and mini.nginx.live_config_id() == "bbbbbbbbbbbb"
    good = mini.nginx.conf.read_text()
    bad = mini.conf("cccccccccccc").replace("events {", "no_such_directive on;\nevents {")
    result = mini.nginx.apply(bad, "cccccccccccc", {})
    # refused: the [emerg] was seen (a reload that times out is an NginxError, never refused)
    assert result.refused and not result.ok and "no_such_directive" in result.message, result
    assert len(tests) == 1  # nginx -t ran once, for the reason
    assert mini.nginx.live_config_id() == "bbbbbbbbbbbb" and mini.nginx.conf.read_text() == good
    mini.apply("dddddddddddd")  # and the next good change goes live
    assert mini.nginx.live_config_id() == "dddddddddddd"
