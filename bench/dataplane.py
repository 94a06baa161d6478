"""Benchmark: data-plane overhead of the generated nginx.conf vs a hand-written one.

nginx processes on loopback: a backend answering `200 ok`, the configuration ingressctl
generates for one Ingress -> Service -> that backend (with the Lua balancer, the default,
and with static upstreams), and a hand-written minimal reverse proxy (upstream with
keepalive + proxy_pass) to the same backend, bare and with the request headers the generated
configuration sets (like for like), and the default with per-request metrics on ("lua+metrics").
wrk loads each
proxy in turn, alternating, for a bounded time; the table shows requests/s and latency
percentiles side by side and the ratio generated / hand-written (target >= 0.95).

    .venv/bin/python bench/dataplane.py [--seconds 4] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.ingress.classes import ClassFilter
from ingressctl.metrics_requests import RequestMetricsOptions
from ingressctl.nginx.process import Nginx
from ingressctl.objects import parse_object
from ingressctl.store import Store

BACKEND_CONF = """
worker_processes 1; pid {prefix}/nginx.pid; error_log stderr error; daemon off;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }} }}
"""

# The same, with the request headers every generated location sets (issue 18: like for like).
HAND_HEADERS = """
worker_processes 1; pid {prefix}/nginx.pid; error_log stderr error; daemon off;
events {{ worker_connections 4096; }}
http {{ access_log off;
  map $http_x_request_id $req_id {{ default $http_x_request_id; "" $request_id; }}
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 32; }}
  server {{ listen 127.0.0.1:{port}; server_name bench.example.com;
    location / {{ proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host;
      proxy_set_header X-Request-ID $req_id; proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Port $server_port; proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Scheme $scheme; proxy_set_header X-Scheme $scheme;
      proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for; proxy_set_header Proxy "";
      proxy_pass http://backend; }} }} }}
"""

HAND_WRITTEN = """
worker_processes 1; pid {prefix}/nginx.pid; error_log stderr error; daemon off;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 32; }}
  server {{ listen 127.0.0.1:{port}; server_name bench.example.com;
    location / {{ proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://backend; }} }} }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_plain(conf_text: str, prefix: Path) -> subprocess.Popen[bytes]:
    prefix.mkdir(parents=True)
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text)
    return subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf)], stderr=subprocess.DEVNULL)


def start_generated(workdir: Path, backend: int, port: int, dynamic: bool, metrics: bool = False) -> Controller:
    store = Store()
    objs = [
        {"kind": "IngressClass", "metadata": {"name": "nginx"}, "spec": {"controller": "ingressctl.io/ingress-controller"}},
        {"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "b"},
         "data": {"worker-processes": "1", "enable-access-log": "false"}},
        {"kind": "Service", "metadata": {"name": "web", "namespace": "b"},
         "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}},
        {"kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "web-1", "namespace": "b", "labels": {"kubernetes.io/service-name": "web"}},
         "ports": [{"name": "http", "port": backend}], "endpoints": [{"addresses": ["127.0.0.1"]}]},
        {"kind": "Ingress", "metadata": {"name": "web", "namespace": "b"},
         "spec": {"ingressClassName": "nginx", "rules": [{"host": "bench.example.com", "http": {"paths": [
             {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
    ]
    store.replace(None, [parse_object(o) for o in objs])
    opts = ControllerOptions(state_dir=workdir, http_port=port, https_port=free_port(), listen=("127.0.0.1:",),
                             classes=ClassFilter(), configmap="b/cfg", dynamic_endpoints=dynamic,
                             request_metrics=RequestMetricsOptions() if metrics else None)
    ctl = Controller(store, opts, Nginx(opts.prefix))
    ctl.nginx.prepare()  # type: ignore[union-attr]
    if ctl.pusher is not None:
        ctl.pusher.install_lua()
    from ingressctl.nginx.defaultcert import ensure_default_certificate

    ensure_default_certificate(opts.prefix / "certs" / "default.pem")
    result = ctl.sync()
    if not result.ok:
        raise SystemExit(f"generated config did not go live: {result.message}")
    return ctl


def wrk(port: int, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H",
                          "Host: bench.example.com", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(re.search(rf"^\s+{p}%\s+([0-9.]+\w+)", out, re.M).group(1))  # type: ignore[union-attr]
           for p in ("50", "99")}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"port {port}: {non2xx.group(1)} non-2xx responses")
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"]}


def _ms(text: str) -> float:
    value, unit = re.match(r"([0-9.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (scripts/setup.sh installs it)")
    tmp = Path(tempfile.mkdtemp(prefix="ingressctl-bench-"))
    backend, lua_port, static_port, hand_port = free_port(), free_port(), free_port(), free_port()
    metrics_port, headers_port = free_port(), free_port()
    procs = [start_plain(BACKEND_CONF.format(prefix=tmp / "backend", port=backend), tmp / "backend"),
             start_plain(HAND_WRITTEN.format(prefix=tmp / "hand", port=hand_port, backend=backend), tmp / "hand"),
             start_plain(HAND_HEADERS.format(prefix=tmp / "handh", port=headers_port, backend=backend),
                         tmp / "handh")]
    ctls: list[Controller] = []
    try:
        time.sleep(0.5)
        ctls.append(start_generated(tmp / "lua", backend, lua_port, dynamic=True))
        ctls.append(start_generated(tmp / "static", backend, static_port, dynamic=False))
        ctls.append(start_generated(tmp / "metrics", backend, metrics_port, dynamic=True, metrics=True))
        ports = {"lua+metrics": metrics_port, "generated-lua": lua_port, "generated": static_port,
                 "hand-headers": headers_port, "hand-written": hand_port}
        for port in ports.values():
            wrk(port, 1, args.connections)  # warm up
        results: dict[str, list[dict[str, float]]] = {k: [] for k in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                results[name].append(wrk(port, args.seconds, args.connections))
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99")} for k, v in results.items()}
        print(f"wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s, medians; "
              "1 nginx worker each; loopback")
        h = med["hand-written"]
        hh = med["hand-headers"]
        print(f"{'config':<14} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs hand':>8} {'vs hand+hdr':>12} "
              f"{'p99 ratio':>10}")
        for k in ports:
            m = med[k]
            print(f"{k:<14} {m['rps']:>10.0f} {m['p50']:>8.3f} {m['p99']:>8.3f} {m['rps'] / h['rps']:>8.3f} "
                  f"{m['rps'] / hh['rps']:>12.3f} {m['p99'] / h['p99']:>10.3f}")
        print("req/s ratios against the hand-written proxy without and with the same request headers; "
              "generated-lua is the default (Lua balancer), lua+metrics adds the per-request metrics (target >= 0.9)")
    finally:
        for ctl in ctls:
            ctl.nginx.stop(graceful=False)  # type: ignore[union-attr]
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
