"""Admission verdict latency with 1,000 and 10,000 Ingresses in the Store.

Each Store holds N Ingresses (two per host, 200 Services with endpoints, a TLS Secret on
every tenth host) and the controller's ConfigMap. Candidates are a fixed mix: new paths on
existing hosts (allowed), duplicates of existing host+path (denied, conflict), new hosts
(allowed) and injection payloads (denied). Verdicts go through the webhook's own path
(`review` -> `StoreCheck` -> options from the ConfigMap, as `ingressctl controller
--webhook-port` builds them). The host index is built once when the webhook starts
("index build", not a verdict). "after write" is the p50/p99 of verdicts each right after a Store write (an
EndpointSlice change): the Store makes a new snapshot and the index re-checks every Ingress
by identity. The "full build+render" column is what one naive verdict would cost: build and
render all N.

Run: .venv/bin/python bench/admission.py [--candidates 400]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingressctl.admission.options import validate_options
from ingressctl.admission.server import StoreCheck, review
from ingressctl.admission.validate import ValidateOptions
from ingressctl.controller import ControllerOptions
from ingressctl.ingress.build import BuildOptions, build
from ingressctl.nginx.render import Renderer
from ingressctl.objects import parse_object
from ingressctl.store import Store
from tests.admission_fixtures import PREFIX, endpoint_slice, ingress, ingress_class, service

SERVICES = 200
WRITES = 100
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ingressctl", "namespace": "ingress"},
             "data": {"proxy-body-size": "8m", "proxy-read-timeout": "120s", "ssl-redirect": "true"}}


def make_store(n: int) -> Store:
    objs: list[dict[str, Any]] = [ingress_class(), CONFIGMAP]
    for s in range(SERVICES):
        objs += [service(f"svc{s}"), endpoint_slice(f"svc{s}", addresses=(f"10.1.{s // 250}.{s % 250 + 1}",))]
    for i in range(n):
        host = f"h{i // 2}.example.com"
        tls = [{"hosts": [host], "secretName": "missing-tls"}] if (i // 2) % 10 == 0 else None
        objs.append(ingress(f"ing{i}", host=host, path=f"/p{i % 2}", service=f"svc{i % SERVICES}", tls=tls,
                            created=f"2024-01-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z"))
    store = Store()
    store.replace(None, [parse_object(o) for o in objs])
    return store


def candidates(n: int, count: int) -> list[bytes]:
    out = []
    for k in range(count):
        host = f"h{(k * 7919) % (n // 2)}.example.com"
        kind = k % 4
        if kind == 0:
            obj = ingress(f"cand{k}", host=host, path=f"/new{k}", created=None)
        elif kind == 1:
            obj = ingress(f"cand{k}", host=host, path="/p0", created=None)  # conflict
        elif kind == 2:
            obj = ingress(f"cand{k}", host=f"new{k}.example.com", created=None)
        else:
            obj = ingress(f"cand{k}", host=host, path="/x", created=None,
                          annotations={PREFIX + "proxy-read-timeout": "5;\nload_module /tmp/x.so;"})
        out.append(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": f"u{k}", "operation": "CREATE", "object": obj,
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}}}).encode())
    return out


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(n: int, count: int) -> dict[str, float]:
    store = make_store(n)
    copts = ControllerOptions(state_dir=Path("/nonexistent"), configmap="ingress/ingressctl")
    check = StoreCheck(store, lambda snap: validate_options(copts, snap))
    bodies = candidates(n, count)
    t0 = time.perf_counter()
    check.warm()  # what start_webhook does before serving, with gc.freeze()
    first = time.perf_counter() - t0
    gc.freeze()
    times, allowed = [], 0
    for body in bodies:
        t = time.perf_counter()
        _, doc = review(body, check)
        times.append(time.perf_counter() - t)
        allowed += doc["response"]["allowed"]
    changed = []
    for k in range(WRITES):  # a write to the Store first: new snapshot, index refreshed by identity
        store.apply(parse_object(endpoint_slice(f"svc{k}", addresses=(f"10.9.{k // 250}.{k % 250 + 1}",))))
        t = time.perf_counter()
        review(bodies[k % len(bodies)], check)
        changed.append(time.perf_counter() - t)
    t = time.perf_counter()
    Renderer().render(build(store.snapshot(), BuildOptions()).model,
                      ValidateOptions().render)
    naive = time.perf_counter() - t
    return {"n": n, "first": first, "p50": statistics.median(times), "p99": percentile(times, 0.99),
            "max": max(times), "changed": statistics.median(changed), "changed99": percentile(changed, 0.99),
            "naive": naive, "allowed": allowed, "count": len(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=400)
    args = parser.parse_args()
    rows = [measure(n, args.candidates) for n in (1_000, 10_000)]
    ms = 1000.0
    print(f"{'Ingresses':>10} {'verdicts':>9} {'allowed':>8} {'index build ms':>15} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'after write p50/p99 ms':>23} {'full build+render ms':>21} {'full/p50':>9}")
    for r in rows:
        after = f"{r['changed'] * ms:.1f} / {r['changed99'] * ms:.1f}"
        print(f"{r['n']:>10,} {r['count']:>9} {r['allowed']:>8} {r['first'] * ms:>15.1f} {r['p50'] * ms:>8.2f} "
              f"{r['p99'] * ms:>8.2f} {r['max'] * ms:>8.2f} {after:>23} {r['naive'] * ms:>21.1f} "
              f"{r['naive'] / r['p50']:>8.0f}x")
    small, big = rows
    print(f"\n10k/1k ratio: p50 {big['p50'] / small['p50']:.2f}x, p99 {big['p99'] / small['p99']:.2f}x "
          f"(target: p99 <= 100 ms at 10,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
