"""Benchmark: an endpoint change until traffic follows, Lua balancer vs reload.

For N generated Ingresses (each with its own Service), one Service's EndpointSlice is
switched between two loopback backends; the time from the Store write until requests reach
the new backend is measured, with `--dynamic-endpoints on` (the fast path: no build, no
render, no reload) and `off` (full sync and an nginx reload), side by side.

    .venv/bin/python bench/endpoint_update.py [--sizes 100,2000] [--changes 5]
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_render import objects
from dataplane import free_port, start_plain

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.nginx.defaultcert import ensure_default_certificate
from ingressctl.nginx.process import Nginx
from ingressctl.objects import parse_object
from ingressctl.store import Store

BACKENDS = """
worker_processes 1; pid {prefix}/nginx.pid; error_log stderr error; daemon off;
events {{ worker_connections 1024; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{a}; location / {{ return 200 "a"; }} }}
  server {{ listen 127.0.0.1:{b}; location / {{ return 200 "b"; }} }} }}
"""


def slice_for(port: int):
    return parse_object({
        "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "app0-x", "namespace": "ns0", "labels": {"kubernetes.io/service-name": "app0"}},
        "ports": [{"name": "http", "port": port}], "endpoints": [{"addresses": ["127.0.0.1"]}]})


def answer(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": "app0.bench.example.com"})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def run(n: int, dynamic: bool, changes: int, a: int, b: int, workdir: Path) -> dict[str, float]:
    store = Store()
    objs = [o for o in objects(n) if not (o.meta.kind == "EndpointSlice" and o.meta.name == "app0-x")]
    store.replace(None, objs + [slice_for(a)])
    port = free_port()
    opts = ControllerOptions(state_dir=workdir, http_port=port, https_port=free_port(), listen=("127.0.0.1:",),
                             dynamic_endpoints=dynamic)
    ctl = Controller(store, opts, Nginx(opts.prefix, reload_timeout=120))
    assert ctl.nginx is not None
    ctl.nginx.prepare()
    ensure_default_certificate(opts.prefix / "certs" / "default.pem")
    if ctl.pusher is not None:
        ctl.pusher.install_lua()
    store.subscribe(ctl._note_change)
    try:
        assert ctl.sync().ok
        ctl._take_pending()
        times = []
        for i in range(changes):
            target, body = (b, "b") if i % 2 == 0 else (a, "a")
            start = time.perf_counter()
            store.apply(slice_for(target))
            services = ctl._take_pending()
            if not (services and ctl.sync_endpoints(services)):
                ctl.sync()
            while answer(port) != body:
                if time.perf_counter() - start > 60:
                    raise SystemExit("traffic did not follow within 60 s")
            times.append(time.perf_counter() - start)
        return {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000,
                "reloads": ctl.metrics.reloads._value.get() - 1}
    finally:
        ctl.nginx.stop(graceful=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,2000")
    ap.add_argument("--changes", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ingressctl-bench-ep-"))
    a, b = free_port(), free_port()
    backend = start_plain(BACKENDS.format(prefix=tmp / "backends", a=a, b=b), tmp / "backends")
    try:
        time.sleep(0.3)
        print(f"{'ingresses':>9} {'mode':<14} {'median ms':>10} {'max ms':>8} {'reloads':>8}")
        for n in (int(x) for x in args.sizes.split(",")):
            rows = {}
            for dynamic in (True, False):
                mode = "lua balancer" if dynamic else "reload"
                rows[mode] = run(n, dynamic, args.changes, a, b, tmp / f"{n}-{mode.replace(' ', '-')}")
                r = rows[mode]
                print(f"{n:>9} {mode:<14} {r['median_ms']:>10.1f} {r['max_ms']:>8.1f} {r['reloads']:>8.0f}")
            ratio = rows["reload"]["median_ms"] / rows["lua balancer"]["median_ms"]
            print(f"{'':>9} reload / lua balancer: {ratio:.1f}x")
    finally:
        backend.terminate()
        backend.wait(timeout=10)
        subprocess.run(["pkill", "-f", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
