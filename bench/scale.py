"""Benchmark: the growth table of issue 18, every size in one run, so the next regression shows.

`ingressctl run` (local mode, as a user runs it) serves N generated Ingresses: each its own
host, one Prefix path and its own Service with 3 endpoints (127.0.0.1-3 on one echo backend);
every 4th has its own TLS Secret. Per size it prints:

  first sync   the first sync's phases (controller log): manifests read, build, render, nginx
               (start), and the time from start to /readyz 200
  changes      change -> served, p50 and max of --changes each, polled every 10 ms on new
               connections: a new Ingress file (its host answers 200), a path edit (app1's one
               path, which starts as /p: the new path answers), a TLS Secret rotation (SNI gives the new certificate), an
               EndpointSlice edit (the other backend answers); and how many reloads each took
  shares       for the changes that reload, the median of each phase (read, build, render,
               nginx) and what is left (watch debounce, controller debounce, polling)
  memory       nginx PSS (master + workers) after the reloads above (at least 10), the
               master's RSS, and the controller's RSS

    .venv/bin/python bench/scale.py [--sizes 1000,3000,10000,30000] [--changes 5]

Targets (issue 18): change -> served p99 <= 1 s at 10,000; at 30,000 ready <= 60 s and a
change <= 3 s; nginx PSS <= 600 MB and controller RSS <= 300 MB at 10,000.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import http.server
import json
import re
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e.harness import LocalController, free_port
from tests.factory import tls_secret

CLASS = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
         "spec": {"controller": "ingressctl.io/ingress-controller"}}


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def echo(name: str, port: int, addresses: tuple[str, ...]) -> list[http.server.ThreadingHTTPServer]:
    servers = []
    for a in addresses:
        s = http.server.ThreadingHTTPServer((a, port), Echo)
        s.name = name  # type: ignore[attr-defined]
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
    return servers


def _secret(i: int) -> dict:
    secret = tls_secret(f"app{i}-tls", f"app{i}.scale.test", ns=f"ns{i % 50}")
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": f"app{i}-tls", "namespace": f"ns{i % 50}"},
            "data": {k: base64.b64encode(v).decode() for k, v in secret.data.items()}}  # type: ignore[attr-defined]


def app(i: int, port: int, path: str = "/", secret: dict | None = None) -> str:
    """One Ingress with its Service and EndpointSlice (and Secret), as JSON documents (YAML)."""
    ns, name, host = f"ns{i % 50}", f"app{i}", f"app{i}.scale.test"
    docs: list[dict] = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
         "spec": {"ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
         "ports": [{"name": "http", "port": port}],
         "endpoints": [{"addresses": [f"127.0.0.{k}"]} for k in (1, 2, 3)]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"ingressClassName": "nginx",
                  **({"tls": [{"hosts": [host], "secretName": f"{name}-tls"}]} if secret else {}),
                  "rules": [{"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": {
                      "service": {"name": name, "port": {"number": 80}}}}]}}]}}]
    if secret:
        docs.append(secret)
    return "---\n".join(json.dumps(d) + "\n" for d in docs)


def http_status(port: int, host: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def fingerprint(port: int, sni: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
    except OSError:
        return ""


def until(check, timeout: float = 300.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError("timed out")
        time.sleep(0.01)
    return time.monotonic() - started


def pss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(re.search(r"^Pss:\s+(\d+) kB", text, re.M).group(1)) / 1024  # type: ignore[union-attr]


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1)) / 1024  # type: ignore[union-attr]


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


LIVE = re.compile(r"is live \((\d+) ms: build (\d+), render (\d+), nginx (\d+)\)")
READ = re.compile(r"manifests read: \d+ objects (?:of \d+ changed files )?in (\d+) ms")


def phases_since(log: str, offset: int) -> list[dict[str, float]]:
    """Each reload after `offset` in the log, with the read that preceded it."""
    out, read = [], 0.0
    for line in log[offset:].splitlines():
        if m := READ.search(line):
            read = float(m.group(1))
        elif m := LIVE.search(line):
            out.append({"read": read, "build": float(m.group(2)), "render": float(m.group(3)),
                        "nginx": float(m.group(4))})
    return out


def settle(ctl: LocalController) -> None:
    """Until the controller counts live the configuration on disk (no reload in flight)."""
    until(lambda: ctl.live_config_has(""), timeout=600)
    time.sleep(0.3)


def measure(n: int, changes: int, one: int, two: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"ingressctl-scale-{n}-"))
    ctl = LocalController(work)
    ctl.manifests.mkdir(parents=True)
    ctl.write("00-class.yaml", json.dumps(CLASS))
    secrets = {i: _secret(i) for i in range(0, n, 4)}
    for i in range(n):
        (ctl.manifests / f"app{i}.yaml").write_text(app(i, one, path="/p" if i == 1 else "/", secret=secrets.get(i)))
    row: dict = {"n": n}
    started = time.monotonic()
    ctl.start(timeout=1800)
    row["ready"] = time.monotonic() - started
    try:
        first = phases_since(ctl.log(), 0)[0]
        row["first"] = first
        assert http_status(ctl.http_port, "app3.scale.test", "/")[0] == 200
        kinds: dict[str, list[float]] = {}
        reloads: dict[str, float] = {}
        shares: list[dict[str, float]] = []

        def run(kind: str, change, served) -> None:  # type: ignore[no-untyped-def]
            before, offset = ctl.reloads(), len(ctl.log())
            for c in range(changes):
                settle(ctl)
                began = time.monotonic()
                change(c)
                until(lambda c=c: served(c))
                kinds.setdefault(kind, []).append(time.monotonic() - began)
            settle(ctl)
            reloads[kind] = ctl.reloads() - before
            shares.extend(phases_since(ctl.log(), offset))

        run("new Ingress", lambda c: ctl.write(f"new{c}.yaml", app(n + c, one)),
            lambda c: http_status(ctl.http_port, f"app{n + c}.scale.test", "/")[0] == 200)
        run("path edit", lambda c: ctl.write("app1.yaml", app(1, one, path=f"/v{c}")),
            lambda c: http_status(ctl.http_port, "app1.scale.test", f"/v{c}")[0] == 200)
        old = {"fp": fingerprint(ctl.https_port, "app0.scale.test")}

        def rotate(c: int) -> None:
            old["fp"] = fingerprint(ctl.https_port, "app0.scale.test")
            ctl.write("app0.yaml", app(0, one, secret=_secret(0)))

        run("TLS Secret rotation", rotate, lambda c: fingerprint(ctl.https_port, "app0.scale.test") not in ("", old["fp"]))
        run("EndpointSlice edit", lambda c: ctl.write("app2.yaml", app(2, two if c % 2 == 0 else one)),
            lambda c: http_status(ctl.http_port, "app2.scale.test", "/")[1] == (b"two" if c % 2 == 0 else b"one"))
        total_reloads = ctl.reloads()
        while total_reloads < 11:  # the first start and at least 10 reloads before memory is read
            settle(ctl)
            ctl.write("app1.yaml", app(1, one, path=f"/m{total_reloads}"))
            until(lambda t=total_reloads: http_status(ctl.http_port, "app1.scale.test", f"/m{t}")[0] == 200)
            total_reloads += 1
        settle(ctl)
        master = ctl.nginx_pid()
        row["changes"], row["reloads"], row["shares"] = kinds, reloads, shares
        row["nginx_pss"] = pss_mb(master) + sum(pss_mb(p) for p in children(master))
        row["master_rss"] = rss_mb(master)
        assert ctl.proc is not None
        row["controller_rss"] = rss_mb(ctl.proc.pid)
        row["reloads_total"] = ctl.reloads()
    finally:
        ctl.stop()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,3000,10000,30000")
    ap.add_argument("--changes", type=int, default=5)
    args = ap.parse_args()
    one, two = free_port(), free_port()
    echo("one", one, ("127.0.0.1", "127.0.0.2", "127.0.0.3"))
    echo("two", two, ("127.0.0.1",))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {n} Ingresses ...", file=sys.stderr, flush=True)
        rows.append(measure(n, args.changes, one, two))

    print("\nfirst sync (ms) and start -> ready (s)")
    print(f"{'Ingresses':>9} | {'read':>6} | {'build':>6} | {'render':>6} | {'nginx':>6} | {'ready':>7}")
    for r in rows:
        f = r["first"]
        print(f"{r['n']:>9} | {f['read']:>6.0f} | {f['build']:>6.0f} | {f['render']:>6.0f} | {f['nginx']:>6.0f} | "
              f"{r['ready']:>6.1f}s")
    kinds = list(rows[0]["changes"])
    print(f"\nchange -> served, p50 / max of {args.changes} (s), and reloads")
    print(f"{'Ingresses':>9} | " + " | ".join(f"{k:>24}" for k in kinds))
    for r in rows:
        cells = []
        for k in kinds:
            xs = r["changes"][k]
            cells.append(f"{statistics.median(xs):6.2f} / {max(xs):5.2f} ({r['reloads'][k]:.0f} rl)")
        print(f"{r['n']:>9} | " + " | ".join(f"{c:>24}" for c in cells))
    print("\nwhere a reloading change goes: median ms per phase (share of the median change -> served)")
    print(f"{'Ingresses':>9} | {'read':>11} | {'build':>11} | {'render':>11} | {'nginx':>11} | {'other':>11}")
    for r in rows:
        med = {k: statistics.median(s[k] for s in r["shares"]) for k in ("read", "build", "render", "nginx")}
        served = statistics.median(r["changes"]["new Ingress"] + r["changes"]["path edit"]) * 1000
        other = max(served - sum(med.values()), 0.0)
        cells = [f"{v:>5.0f} ({v / served:>3.0%})" for v in (*med.values(), other)]
        print(f"{r['n']:>9} | " + " | ".join(f"{c:>11}" for c in cells))
    print("\nmemory after the reloads (MB)")
    print(f"{'Ingresses':>9} | {'reloads':>7} | {'nginx PSS':>9} | {'master RSS':>10} | {'controller RSS':>14}")
    for r in rows:
        print(f"{r['n']:>9} | {r['reloads_total']:>7.0f} | {r['nginx_pss']:>9.0f} | {r['master_rss']:>10.0f} | "
              f"{r['controller_rss']:>14.0f}")


if __name__ == "__main__":
    main()
