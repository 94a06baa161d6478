"""Benchmark: the Python cost of the endpoint fast path, before and after it followed only
the touched upstreams (issue 18 §4: 42 ms at 10,000 Ingresses, p99 152 ms).

One Service's endpoints change; both variants refresh the model (`refresh_upstreams`), then:
  all      the whole endpoint table and a diff against what nginx holds (the old path)
  touched  only the changed Services' lines (`EndpointPusher.push_lines` sends those)
No nginx runs: the POST and the file write are the same in both and left out.

    .venv/bin/python bench/endpoint_fastpath.py [--sizes 1000,10000] [--changes 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_render import objects

from ingressctl.ingress.backends import refresh_upstreams
from ingressctl.ingress.build import BuildOptions, build
from ingressctl.nginx.dynamic import endpoint_line, endpoint_table
from ingressctl.objects import parse_object
from ingressctl.store import Snapshot, Store


def measure(n: int, changes: int) -> dict[str, list[float]]:
    store = Store()
    store.replace(None, objects(n))
    model = build(store.snapshot(), BuildOptions()).model
    live = endpoint_table(model)
    out: dict[str, list[float]] = {"all": [], "touched": []}
    for c in range(changes):
        i = c % n
        ns, name = f"ns{i % 50}", f"app{i}"
        store.apply(parse_object({
            "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [f"10.200.{c & 255}.{k}"]} for k in (1, 2)]}))
        snap: Snapshot = store.snapshot()
        services = frozenset({f"{ns}/{name}"})
        for variant in ("all", "touched"):
            started = time.perf_counter()
            m = refresh_upstreams(model, snap, services)
            assert m is not None
            if variant == "all":
                table = endpoint_table(m)
                changed = {k: v for k, v in table.items() if live.get(k) != v}
            else:
                changed = {u.name: endpoint_line(u) for u in m.upstreams
                           if u.service in services and u.lua_balanced and u.endpoints}
                changed = {k: v for k, v in changed.items() if live.get(k) != v}
            out[variant].append(time.perf_counter() - started)
            assert len(changed) == 1
        model = m
        live.update(changed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--changes", type=int, default=200)
    args = ap.parse_args()
    print(f"{'Ingresses':>9} | {'all p50':>8} | {'all p99':>8} | {'touched p50':>11} | {'touched p99':>11} | ratio p50")
    for n in (int(x) for x in args.sizes.split(",")):
        r = measure(n, args.changes)
        q = {k: (statistics.median(v) * 1000, sorted(v)[int(len(v) * 0.99) - 1] * 1000) for k, v in r.items()}
        print(f"{n:>9} | {q['all'][0]:>6.2f}ms | {q['all'][1]:>6.2f}ms | {q['touched'][0]:>9.2f}ms | "
              f"{q['touched'][1]:>9.2f}ms | {q['touched'][0] / q['all'][0]:.2f}")


if __name__ == "__main__":
    main()
