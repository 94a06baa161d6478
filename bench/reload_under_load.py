"""Benchmark: traffic and nginx memory across reloads, and the outage of an nginx crash.

A real `ingressctl run` (e2e harness) in front of a plain nginx backend answering 200.

1. wrk for `--seconds` (default 30) while the manifest directory changes `--reloads`
   times (default 50; every change renames a host, so every one is a real reload of a
   configuration of the same size), once
   with keepalive and once with `Connection: close`: requests, non-2xx answers, socket
   errors, and nginx memory (PSS of master + workers: peak under the same load without
   reloads, and peak with them). Target: 0 non-2xx. Socket errors with keepalive are
   requests a client sent on an idle kept-alive connection just as an old worker closed it
   (nginx closes idle connections when it drains; HTTP clients retry those, wrk counts them).
2. One new long-lived stream (a chunked response that never ends, websocket-like) before
   each of `--stream-reloads` reloads (default 100), with `max-draining-generations` at 1
   (the default), 2 and 0 (unbounded, ingress-nginx's behaviour): nginx memory against the
   baseline, between reloads and at any time, and the streams still open. Target: <= 2x.
3. SIGKILL of nginx's process group (as the OOM killer does), `--kills` times: the time
   until a request is answered 200 again.

    .venv/bin/python bench/reload_under_load.py [--seconds 30] [--reloads 50] [--stream-reloads 100]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.harness import INGRESS_CLASS, LocalController, free_port, manifests_for_backends, request

BACKEND_CONF = """
worker_processes 1; pid {prefix}/nginx.pid; error_log stderr error; daemon off;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }} }}
"""


def ingress(name: str, host: str, svc: str = "backend") -> str:
    return f"""\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {{name: {name}, namespace: default}}
        spec:
          ingressClassName: nginx
          rules:
          - host: {host}
            http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}
        """


def settings(max_draining: str) -> str:
    return f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings, namespace: default}}
        data: {{max-draining-generations: "{max_draining}"}}
        """


# -- nginx memory -----------------------------------------------------------------------------

def _children(parent: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                out.append(int(entry))
    return out


def nginx_memory(master: int) -> tuple[float, int]:
    """(PSS of master + workers in MiB, number of workers)."""
    pids = [master, *_children(master)]
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(m.group(1)) if m else 0
    return total / 1024, len(pids) - 1


class MemorySampler:
    def __init__(self, ctl: LocalController) -> None:
        self.ctl, self.peak, self.peak_workers = ctl, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                mib, workers = nginx_memory(self.ctl.nginx_pid())
            except (OSError, ValueError):
                continue
            if mib > self.peak:
                self.peak = mib
            self.peak_workers = max(self.peak_workers, workers)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- processes ----------------------------------------------------------------------------------

def start_backend(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    prefix = workdir / "backend"
    (prefix / "logs").mkdir(parents=True)
    (prefix / "nginx.conf").write_text(BACKEND_CONF.format(prefix=prefix, port=port))
    proc = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], start_new_session=True)
    return proc, port


class StreamingBackend:
    """/stream answers with a chunk every second, forever (a websocket-like connection)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(b"2\r\nx\n\r\n")
                        self.wfile.flush()
                        time.sleep(1)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def controller(workdir: Path, backend_port: int, extra: list[str] | None = None) -> LocalController:
    ctl = LocalController(workdir, extra_args=["--configmap", "default/settings", *(extra or [])])
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("svc.yaml", manifests_for_backends("default", "backend", [backend_port]))
    ctl.write("ing.yaml", ingress("bench", "bench.test"))
    ctl.start()
    ctl.wait_for(lambda: ctl.get("bench.test").status == 200, 10)
    ctl.wait_live()
    return ctl


def reload_and_wait(ctl: LocalController, n: int) -> None:
    before = ctl.reloads()
    ctl.write("extra.yaml", ingress("extra", f"extra-{n}.test"))  # a new host each time, same size
    ctl.wait_for(lambda: ctl.reloads() > before, 20, "reload")


# -- scenarios ----------------------------------------------------------------------------------

def wrk(port: int, seconds: float, close: bool) -> dict[str, int | float]:
    args = ["wrk", "-t2", "-c32", f"-d{seconds:.0f}s", "-H", "Host: bench.test"]
    if close:
        args += ["-H", "Connection: close"]
    out = subprocess.run([*args, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    got = {"requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
           "non2xx": 0, "socket_errors": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        got["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        got["socket_errors"] = sum(int(x) for x in m.groups())
    return got


def traffic(workdir: Path, backend_port: int, seconds: float, reloads: int) -> None:
    print(f"\n1. wrk {seconds:.0f}s (2 threads, 32 connections) across {reloads} reloads")
    print("memory: PSS of nginx master + workers, MiB; base: peak under the same load for 5 s without reloads")
    print(f"{'connections':<12} {'requests':>9} {'non-2xx':>8} {'socket err':>10} {'reloads':>8} "
          f"{'mem base':>9} {'mem peak':>9} {'x base':>7}")
    for close in (False, True):
        ctl = controller(workdir / ("close" if close else "keepalive"), backend_port)
        try:
            with MemorySampler(ctl) as warm:  # the baseline: the same load without reloads
                wrk(ctl.http_port, 5, close)
            base = warm.peak
            result: dict[str, int | float] = {}
            load = threading.Thread(target=lambda r=result, p=ctl.http_port, c=close: r.update(wrk(p, seconds, c)))
            with MemorySampler(ctl) as mem:
                start, r0 = time.monotonic(), ctl.reloads()
                load.start()
                for n in range(reloads):
                    time.sleep(max(0.0, start + (n + 0.5) * seconds / reloads - time.monotonic()))
                    reload_and_wait(ctl, n)
                load.join()
            print(f"{'close' if close else 'keepalive':<12} {result['requests']:>9} {result['non2xx']:>8} "
                  f"{result['socket_errors']:>10} {int(ctl.reloads() - r0):>8} {base:>9.1f} {mem.peak:>9.1f} "
                  f"{mem.peak / base:>7.2f}")
        finally:
            ctl.stop()


def open_stream(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /stream HTTP/1.1\r\nHost: stream.test\r\n\r\n")
    assert s.recv(64).startswith(b"HTTP/1.1 200"), "stream did not start"
    return s


def streams(workdir: Path, backend_port: int, reloads: int) -> None:
    print(f"\n2. one new long-lived stream before each of {reloads} reloads")
    print("memory: PSS of nginx master + workers, MiB; settled: highest between reloads; peak: highest at\n"
          "any time (a reload runs two generations for a moment by nature)")
    print(f"{'max-draining-generations':<26} {'base':>8} {'settled':>11} {'x base':>9} {'peak':>10} "
          f"{'x base':>9} {'workers':>8} {'streams':>8}")
    streaming = StreamingBackend()
    try:
        for max_draining in ("1", "2", "0"):
            ctl = controller(workdir / f"streams-{max_draining}", backend_port)
            ctl.write("settings.yaml", settings(max_draining))
            ctl.write("stream-svc.yaml", manifests_for_backends("default", "stream", [streaming.port]))
            ctl.write("stream.yaml", ingress("stream", "stream.test", "stream"))
            ctl.wait_for(lambda p=ctl.http_port: _stream_works(p), 10, "stream.test live")
            time.sleep(0.5)  # the ConfigMap and the Service may come in separate reloads
            ctl.wait_live()
            base, _ = nginx_memory(ctl.nginx_pid())
            opened: list[socket.socket] = []
            try:
                settled = 0.0  # between reloads, once idle old workers have exited
                with MemorySampler(ctl) as mem:
                    for n in range(reloads):
                        opened.append(open_stream(ctl.http_port))
                        reload_and_wait(ctl, n)
                        time.sleep(0.1)
                        settled = max(settled, nginx_memory(ctl.nginx_pid())[0])
                still = sum(1 for s in opened if _open(s))
                print(f"{max_draining + LABELS.get(max_draining, ''):<26} {base:>8.1f} {settled:>11.1f} "
                      f"{settled / base:>9.2f} {mem.peak:>10.1f} {mem.peak / base:>9.2f} {mem.peak_workers:>8} "
                      f"{still:>8}")
            finally:
                for s in opened:
                    s.close()
                ctl.stop()
    finally:
        streaming.stop()


LABELS = {"1": " (default)", "0": " (unbounded)"}


def _stream_works(port: int) -> bool:
    try:
        open_stream(port).close()
        return True
    except (OSError, AssertionError):
        return False


def _open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        while True:
            if s.recv(65536) == b"":
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def crashes(workdir: Path, backend_port: int, kills: int) -> None:
    print(f"\n3. SIGKILL of nginx's process group, {kills} times: outage until a request is answered 200")
    ctl = controller(workdir / "crash", backend_port)
    outages = []
    try:
        for _ in range(kills):
            os.killpg(ctl.nginx_pid(), signal.SIGKILL)
            killed = time.monotonic()
            while True:
                try:
                    if request(ctl.http_port, "bench.test", timeout=1).status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.002)
            outages.append((time.monotonic() - killed) * 1000)
            time.sleep(0.5)
        print(f"outage ms: median {statistics.median(outages):.0f}, max {max(outages):.0f} "
              f"({', '.join(f'{o:.0f}' for o in outages)}); restarts counted: "
              f"{ctl.metric('ingressctl_nginx_restarts_total'):.0f}")
    finally:
        ctl.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--reloads", type=int, default=50)
    p.add_argument("--stream-reloads", type=int, default=100)
    p.add_argument("--kills", type=int, default=5)
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ingressctl-bench-reload-"))
    os.chmod(workdir, 0o755)
    backend, port = start_backend(workdir)
    try:
        traffic(workdir, port, args.seconds, args.reloads)
        streams(workdir, port, args.stream_reloads)
        crashes(workdir, port, args.kills)
    finally:
        backend.terminate()
        backend.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
