"""Benchmark: the cost of one /metrics scrape with request metrics at scale.

Builds the dump nginx would answer (ingressctl_metrics.lua's key format) for N Ingresses x a
few statuses, each label set with its request counter and every histogram hitting two buckets,
then times the controller's side: parsing it into families (`request_families`) and the
Prometheus text exposition. nginx's own part (reading the shared dict) is timed by the e2e
setup separately and is not in this table.

    .venv/bin/python bench/metrics_scrape.py [--ingresses 1000,10000] [--statuses 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from ingressctl.metrics_requests import HISTOGRAMS, RequestMetricsOptions, request_families


def dump(ingresses: int, statuses: int) -> str:
    lines = []
    for i in range(ingresses):
        for status in ("200", "404", "503", "500", "302")[:statuses]:
            labels = f"host-{i}.example.com\t{status}\tGET\t\t/ ns-{i % 50} ing-{i} svc-{i}"
            lines.append(f"requests\t\t{labels}\t{100 + i}")
            for name in HISTOGRAMS:
                lines += [f"{name}\t2\t{labels}\t60", f"{name}\t5\t{labels}\t40", f"{name}\ts\t{labels}\t12.5"]
    return "\n".join(lines) + "\n"


class Fixed(Collector):
    def __init__(self, text: str) -> None:
        self.text = text

    def collect(self):  # type: ignore[no-untyped-def]
        return request_families(self.text, RequestMetricsOptions(), ("ingressctl", "class", "pod"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ingresses", default="1000,10000")
    ap.add_argument("--statuses", type=int, default=3)
    args = ap.parse_args()
    print(f"{'Ingresses':>10} {'label sets':>11} {'dump lines':>11} {'parse ms':>9} {'expose ms':>10} {'MB out':>7}")
    for n in (int(x) for x in args.ingresses.split(",")):
        text = dump(n, args.statuses)
        started = time.perf_counter()
        families = request_families(text, RequestMetricsOptions(), ("ingressctl", "class", "pod"))
        parsed = time.perf_counter()
        registry = CollectorRegistry()
        registry.register(Fixed(text))
        out = generate_latest(registry)
        exposed = time.perf_counter()
        assert families
        print(f"{n:>10} {n * args.statuses:>11} {text.count(chr(10)):>11} {(parsed - started) * 1000:>9.0f} "
              f"{(exposed - parsed) * 1000:>10.0f} {len(out) / 1e6:>7.1f}")
    print("expose ms includes a second parse (the registry collects again); the target is < 100 ms per scrape")


if __name__ == "__main__":
    main()
