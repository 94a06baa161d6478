"""Benchmark: how long until traffic follows a change, cluster mode vs local mode.

Starts `ingressctl controller` against the API server double (HTTPS, watch) and `ingressctl
run` on a manifest directory, both with real nginx on loopback, and times from the write
(API object / manifest file) to the first request that shows the new routing, polling every
5 ms. Changes: EndpointSlice switched to another backend, Ingress created for a new host,
Ingress deleted. Prints median and p90 per change and mode, and the cluster/local ratio.
The issue's target is traffic following within 1 s.

    .venv/bin/python bench/cluster_latency.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.cluster import (
    CLASS,
    ClusterController,
    endpoint_slice,
    ingress,
    service,
    start_apiserver,
)
from e2e.harness import Backends, LocalController


def _until(check: Callable[[], bool], limit: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("change never showed up")


def _backend(ctl: LocalController, host: str) -> str:
    r = ctl.get(host)
    return r.backend if r.status == 200 else str(r.status)


def _doc(obj: dict) -> str:  # type: ignore[type-arg]
    return json.dumps(obj) + "\n"


def _round(ctl: LocalController, write: dict[str, Callable[[object], None]], out: dict[str, list[float]],
           ports: dict[str, int], i: int) -> None:
    want = "b" if i % 2 == 0 else "a"
    host = f"new{i}.example.com"
    steps = (("slice", ports[want], lambda: _backend(ctl, "app.example.com") == want),
             ("create", host, lambda: _backend(ctl, host) == want),
             ("delete", host, lambda: _backend(ctl, host) == "404"))
    for name, arg, check in steps:
        write[name](arg)
        out.setdefault(name, []).append(_until(check))


def run(rounds: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {"cluster": {}, "local": {}}
    backends = Backends()
    ports = {"a": backends.start("a"), "b": backends.start("b")}
    with tempfile.TemporaryDirectory() as tmp:
        api = start_apiserver(Path(tmp) / "api")
        api.apply(CLASS, service("web"), endpoint_slice("web", [ports["a"]]), ingress("app", "app.example.com", "web"))
        cluster = ClusterController(Path(tmp) / "cluster", api=api, name="bench")
        local = LocalController(Path(tmp) / "local")
        local.write("base.yaml", _doc(CLASS) + "---\n" + _doc(service("web")) + "---\n" +
                    _doc(ingress("app", "app.example.com", "web")))
        local.write("slice.yaml", _doc(endpoint_slice("web", [ports["a"]])))
        writers = {
            "cluster": {"slice": lambda p: api.apply(endpoint_slice("web", [p])),
                        "create": lambda h: api.apply(ingress("new", h, "web")),
                        "delete": lambda h: api.remove("Ingress", "default", "new")},
            "local": {"slice": lambda p: local.write("slice.yaml", _doc(endpoint_slice("web", [p]))),
                      "create": lambda h: local.write("new.yaml", _doc(ingress("new", h, "web"))),
                      "delete": lambda h: local.remove("new.yaml")},
        }
        for mode, ctl in (("cluster", cluster), ("local", local)):
            ctl.start()
            try:
                _until(lambda ctl=ctl: _backend(ctl, "app.example.com") == "a")
                for i in range(rounds):
                    _round(ctl, writers[mode], out[mode], ports, i)
            finally:
                ctl.stop()
        api.stop()
    backends.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    res = run(args.rounds)
    print(f"{'change':<8} {'cluster p50 ms':>15} {'p90':>7} {'local p50 ms':>13} {'p90':>7} {'cluster/local':>14}")
    for change in ("slice", "create", "delete"):
        c, loc = sorted(res["cluster"][change]), sorted(res["local"][change])
        p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000
        print(f"{change:<8} {statistics.median(c) * 1000:>15.0f} {p(c, 0.9):>7.0f} "
              f"{statistics.median(loc) * 1000:>13.0f} {p(loc, 0.9):>7.0f} "
              f"{statistics.median(c) / statistics.median(loc):>13.2f}x")
    worst = max(max(v) for v in res["cluster"].values())
    print(f"worst cluster-mode latency over {args.rounds} rounds: {worst * 1000:.0f} ms (target: < 1000 ms)")


if __name__ == "__main__":
    main()
