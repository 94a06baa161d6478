"""Benchmark: build + render for 100 / 1,000 / 10,000 generated Ingresses.

Each Ingress has its own host, one Prefix path and its own Service with 3 endpoints.
Prints, per size: build seconds, render seconds, total, nginx.conf bytes per Ingress and
peak Python memory of build + render (tracemalloc), each size measured in a fresh child process so peaks do
not mix. Targets (issue 2): 10,000 Ingresses in <= 2 s; <= 2 KB per simple Ingress.

    .venv/bin/python bench/build_render.py [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc


def objects(n: int) -> list:
    from ingressctl.objects import parse_object

    out = [parse_object({"kind": "IngressClass", "metadata": {"name": "nginx"},
                         "spec": {"controller": "ingressctl.io/ingress-controller"}})]
    for i in range(n):
        ns, name = f"ns{i % 50}", f"app{i}"
        out.append(parse_object({"kind": "Service", "metadata": {"name": name, "namespace": ns},
                                 "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250}",
                                          "ports": [{"name": "http", "port": 80}]}}))
        out.append(parse_object({
            "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [f"10.{(i >> 8) & 255}.{i & 255}.{k}"]} for k in (1, 2, 3)]}))
        out.append(parse_object({
            "kind": "Ingress", "metadata": {"name": name, "namespace": ns,
                                            "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": f"{name}.bench.example.com", "http": {
                "paths": [{"path": "/", "pathType": "Prefix",
                           "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}))
    return out


def measure(n: int) -> dict[str, float]:
    """Times as the controller runs them (GC paused around build and render), then peak
    memory in a second pass under tracemalloc (which slows Python down, so it is not timed)."""
    from ingressctl.controller import gc_paused
    from ingressctl.ingress.build import BuildOptions, build
    from ingressctl.nginx.render import RenderContext, Renderer
    from ingressctl.store import Snapshot

    snap = Snapshot.of(objects(n))
    renderer = Renderer()
    ctx = RenderContext(prefix="/var/lib/ingressctl/nginx")
    with gc_paused():
        t0 = time.perf_counter()
        result = build(snap, BuildOptions())
        t1 = time.perf_counter()
        text = renderer.render(result.model, ctx)
        t2 = time.perf_counter()
    tracemalloc.start()
    renderer.render(build(snap, BuildOptions()).model, ctx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    empty = len(renderer.render(build(Snapshot.of(objects(0)), BuildOptions()).model, ctx))
    return {"n": n, "build": t1 - t0, "render": t2 - t1, "bytes_per": (len(text) - empty) / n,
            "peak_mb": peak / 2**20, "servers": len(result.model.servers) - 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout))
    print(f"{'ingresses':>9} {'build s':>8} {'render s':>9} {'total s':>8} {'bytes/ing':>9} {'peak MB':>8}  target")
    for r in rows:
        total = r["build"] + r["render"]
        print(f"{r['n']:>9} {r['build']:>8.3f} {r['render']:>9.3f} {total:>8.3f} {r['bytes_per']:>9.0f} "
              f"{r['peak_mb']:>8.1f}  {'<=2s, <=2048 B' if r['n'] == 10000 else ''}")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        scale = ((b["build"] + b["render"]) / b["n"]) / ((a["build"] + a["render"]) / a["n"])
        print(f"per-Ingress cost at {b['n']} vs {a['n']}: {scale:.2f}x (1.00 = linear)")


if __name__ == "__main__":
    main()
