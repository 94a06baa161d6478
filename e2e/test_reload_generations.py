"""e2e: a reload is finished only when no old worker accepts; files and memory of draining
worker generations; nginx deaths noticed at once (issue 11, items 2-5).

Real nginx throughout: `MiniNginx` drives `Nginx` in this process on a minimal
configuration; the basic-auth and max-draining-generations tests run `ingressctl run`.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

from .annotation_kit import ingress, secret, service
from .harness import INGRESS_CLASS, Backends, LocalController, request, wait_until
from .nginx_kit import MiniNginx, mini, worker_states

__all__ = ["mini"]  # the fixture


def test_reload_returns_only_when_no_old_worker_accepts(mini: MiniNginx):
    mini.apply("gen-1")
    master = mini.nginx.proc.pid  # type: ignore[union-attr]
    for n in range(2, 6):
        before = set(worker_states(master))
        mini.apply(f"gen-{n}")
        now = worker_states(master)  # read at once: nginx signals old workers ~100 ms late
        still_accepting = {pid: t for pid, t in now.items() if pid in before and "shutting down" not in t}
        assert not still_accepting, f"reload {n} reported done while old workers accept: {still_accepting}"
        assert request(mini.port, "x").body == f"gen-{n}".encode()


def test_nginx_death_is_reported_at_once(mini: MiniNginx):
    died = threading.Event()
    mini.nginx.on_exit = died.set  # type: ignore[assignment,method-assign]
    mini.apply("gen-1")
    os.killpg(mini.nginx.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]  # as the OOM killer would
    assert died.wait(timeout=5), "nobody was told that nginx died"
    assert mini.nginx.ensure_running()
    assert request(mini.port, "x").body == b"gen-1"


# -- with `ingressctl run` ----------------------------------------------------------------------

def _sha(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


AUTH = "Authorization: Basic " + base64.b64encode(b"alice:wonderland").decode()


def _partial_request(port: int, host: str) -> socket.socket:
    """A request whose headers are not finished: the worker that accepted it keeps it in flight."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode())
    time.sleep(0.3)  # let a worker of the current generation accept and start reading it
    return s


def _finish(s: socket.socket) -> int:
    s.sendall(f"{AUTH}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return 0
        data += chunk
    s.close()
    return int(data.split()[1])


def _controller(tmp_path: Path, backend: int, extra: list[str] | None = None) -> LocalController:
    tmp_path.chmod(0o711)  # workers (nobody) open htpasswd files per request
    ctl = LocalController(tmp_path, extra_args=extra or [])
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("svc.yaml", service("a", [backend]))
    ctl.write("users.yaml", secret("users", {"auth": f"alice:{_sha('wonderland')}\n".encode()}))
    ctl.write("ing.yaml", ingress("a", "auth.test", [("/", "Prefix", "a")],
                                  {"auth-type": "basic", "auth-secret": "users"}))
    ctl.start()
    ctl.wait_for(lambda: ctl.get("auth.test", headers={"Authorization": AUTH[15:]}).status == 200)
    ctl.wait_live()
    return ctl


def test_rotating_a_basic_auth_secret_under_load_refuses_no_correct_client(tmp_path: Path):
    backends = Backends()
    ctl = _controller(tmp_path, backends.start("a"))
    try:
        statuses: collections.Counter[int] = collections.Counter()
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    statuses[ctl.get("auth.test", headers={"Authorization": AUTH[15:]}).status] += 1
                except OSError:
                    statuses[0] += 1

        in_flight = _partial_request(ctl.http_port, "auth.test")
        t = threading.Thread(target=load)
        t.start()
        for n in range(3):  # each rotation writes a new htpasswd file; alice's password stays valid
            ctl.write("users.yaml", secret("users", {"auth": f"alice:{_sha('wonderland')}\nu{n}:x\n".encode()}))
            ctl.wait_for(lambda n=n: ctl.metric("ingressctl_nginx_reloads_total") >= 2 + n, 10, "rotation live")
            if n == 0:  # (the next reload closes that generation: max-draining-generations 1)
                assert _finish(in_flight) == 200, "a worker of the first generation lost its htpasswd file"
        stop.set()
        t.join()
        assert statuses[200] > 20 and set(statuses) == {200}, statuses
    finally:
        ctl.stop()
        backends.stop()


def test_the_oldest_draining_generation_is_closed_beyond_max_draining_generations(tmp_path: Path):
    backends = Backends()
    ctl = _controller(tmp_path, backends.start("a"), ["--configmap", "default/settings"])
    try:
        streams = []
        for n in range(3):  # one long-lived request per generation, then a reload
            streams.append(_partial_request(ctl.http_port, "auth.test"))
            ctl.write("settings.yaml", f"""\
                apiVersion: v1
                kind: ConfigMap
                metadata: {{name: settings, namespace: default}}
                data: {{max-draining-generations: "2", proxy-body-size: "{n + 2}m"}}
                """)
            ctl.wait_for(lambda n=n: ctl.metric("ingressctl_nginx_reloads_total") >= 2 + n, 10, "reload live")
        # three generations were replaced (one stream each); the two newest may drain (the
        # default, 1, would have closed streams[1] too: the ConfigMap key is read)
        streams[0].settimeout(5)
        assert streams[0].recv(1) == b"", "the oldest draining generation still holds its connection"
        assert [_finish(s) for s in streams[1:]] == [200, 200]
        assert "max-draining-generations" in ctl.log()
    finally:
        ctl.stop()
        backends.stop()


def test_nginx_killed_is_restarted_and_counted(tmp_path: Path):
    backends = Backends()
    ctl = _controller(tmp_path, backends.start("a"))
    try:
        os.killpg(ctl.nginx_pid(), signal.SIGKILL)
        wait_until(lambda: ctl.metric("ingressctl_nginx_restarts_total") == 1, 10, "restart counted")
        ctl.wait_for(lambda: ctl.get("auth.test", headers={"Authorization": AUTH[15:]}).status == 200)
        assert "exited: killed by SIGKILL" in ctl.log()
    finally:
        ctl.stop()
        backends.stop()


def _bound(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_a_restart_that_fails_is_retried_with_a_backoff_and_reports_nginx_error(mini: MiniNginx, caplog):
    mini.apply("gen-1")
    os.killpg(mini.nginx.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
    mini.nginx.proc.wait(timeout=5)  # type: ignore[union-attr]
    with socket.socket() as thief:  # someone took the port meanwhile
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The killed workers close their listening sockets a moment after the master is
        # reaped: bind once the last of them is gone (bounded).
        wait_until(lambda: _bound(thief, mini.port), 5, "the killed workers to release the port")
        thief.listen()
        assert mini.nginx.ensure_running()  # tried, and failed
        assert not mini.nginx.running()
        assert "Address already in use" in caplog.text, "nginx's own words"
        assert not mini.nginx.ensure_running(), "no retry before the backoff: no restart loop"
    wait_until(mini.nginx.ensure_running, 5, "a retry after the backoff")
    assert request(mini.port, "x").body == b"gen-1"
