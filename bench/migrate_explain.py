"""How long `ingressctl migrate check` and `ingressctl explain` take on large exports.

The export is N Ingresses of the ingress-nginx class (two per host, a third of them with
annotations from a fixed mix, one in fifty with an unsupported annotation, one in a hundred
with an invalid value), N/5 Services with endpoints, and the ingress-nginx ConfigMap. It
times `check` (every Ingress through the webhook's Validator in take-over mode) and, on the
same objects as ingressctl would serve them, one build plus 1,000 `explain` calls.

Run: .venv/bin/python bench/migrate_explain.py [--sizes 100,1000,5000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingressctl.explain import explain, parse_request
from ingressctl.ingress.build import BuildOptions, build
from ingressctl.migrate.check import check
from ingressctl.migrate.export import read_export, source_of
from ingressctl.store import Snapshot

A = "nginx.ingress.kubernetes.io/"
MIX = [{}, {A + "proxy-body-size": "8m"}, {A + "rewrite-target": "/$2", A + "use-regex": "true"},
       {A + "limit-rps": "10"}, {A + "enable-cors": "true"}, {A + "ssl-redirect": "false"}]


def export(n: int) -> list[tuple[str, Any]]:
    items: list[dict[str, Any]] = [
        {"kind": "IngressClass", "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}},
        {"kind": "ConfigMap", "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
         "data": {"use-forwarded-headers": "true", "enable-opentelemetry": "true"}}]
    for s in range(max(1, n // 5)):
        items.append({"kind": "Service", "metadata": {"name": f"svc{s}", "namespace": f"ns{s % 20}"},
                      "spec": {"clusterIP": f"10.96.{s // 250}.{s % 250 + 1}", "ports": [{"name": "http", "port": 80}]}})
        items.append({"kind": "EndpointSlice", "addressType": "IPv4",
                      "metadata": {"name": f"svc{s}-a", "namespace": f"ns{s % 20}",
                                   "labels": {"kubernetes.io/service-name": f"svc{s}"}},
                      "ports": [{"name": "http", "port": 8080}],
                      "endpoints": [{"addresses": [f"10.244.{s // 250}.{s % 250 + 1}"]}]})
    for i in range(n):
        s = (i // 2) % max(1, n // 5)
        ann = dict(MIX[i % 3 and (i // 3) % len(MIX)])
        path = "/app(/|$)(.*)" if A + "rewrite-target" in ann else f"/p{i % 2}"
        if i % 50 == 7:
            ann[A + "affinity"] = "cookie"
        if i % 100 == 9:
            ann[A + "proxy-read-timeout"] = "forever"
        items.append({"kind": "Ingress", "metadata": {
            "name": f"ing{i}", "namespace": f"ns{s % 20}", "annotations": ann,
            "creationTimestamp": f"2025-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": f"h{i // 2}.example.com", "http": {"paths": [
                {"path": path, "pathType": "ImplementationSpecific" if "(" in path else "Prefix",
                 "backend": {"service": {"name": f"svc{s}", "port": {"number": 80}}}}]}}]}})
    return [(f"item {i}", raw) for i, raw in enumerate(items)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,5000")
    sizes = [int(x) for x in ap.parse_args().sizes.split(",")]
    now = datetime(2026, 6, 1, tzinfo=UTC)
    print(f"{'Ingresses':>9} | {'migrate check':>13} | {'per Ingress':>11} | {'same/differ/refused':>19} | "
          f"{'build':>7} | {'explain p50':>11}")
    for n in sizes:
        ex = read_export(export(n))
        src = source_of(ex)
        t0 = time.perf_counter()
        report = check(ex, src, now)
        t_check = time.perf_counter() - t0
        snap = Snapshot.of(ex.objects)
        t0 = time.perf_counter()
        result = build(snap, BuildOptions(classes=src.classes, now=now))
        t_build = time.perf_counter() - t0
        times = []
        for i in range(1000):
            req = parse_request(f"http://h{(i * 7) % (n // 2)}.example.com/p{i % 2}/x")
            t0 = time.perf_counter()
            explain(snap, result, req, src.classes)
            times.append(time.perf_counter() - t0)
        times.sort()
        counts = f"{report.count('same')}/{report.count('differs')}/{report.count('refused')}"
        print(f"{n:>9} | {t_check:>11.2f} s | {t_check / n * 1000:>8.2f} ms | {counts:>19} | "
              f"{t_build:>5.2f} s | {times[500] * 1000:>8.2f} ms")


if __name__ == "__main__":
    main()
