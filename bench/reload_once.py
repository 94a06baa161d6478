"""Benchmark: a change's reload with and without a separate `nginx -t` first (issue 18 §3).

N generated Ingresses are served by a real nginx (Lua balancer, as `ingressctl run`); then
one Ingress's path is edited back and forth, and `Nginx.apply` (write, [nginx -t,] SIGHUP,
wait until the new configuration answers and the old workers stop accepting) is timed with
`test_before_reload` on and off, alternating, in one run.

    .venv/bin/python bench/reload_once.py [--sizes 1000,3000] [--changes 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_render import objects

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.nginx.process import Nginx
from ingressctl.objects import Ingress, IngressPath, IngressRule
from ingressctl.store import Snapshot, Store


def measure(n: int, changes: int, work: Path) -> dict[str, list[float]]:
    from dataplane import free_port

    store = Store()
    objs = objects(n)
    store.replace(None, objs)
    opts = ControllerOptions(state_dir=work / f"state-{n}", http_port=free_port(), https_port=free_port(),
                             dynamic_endpoints=True)
    nginx = Nginx(opts.prefix)
    ctl = Controller(store, opts, nginx)
    ctl.start()
    out: dict[str, list[float]] = {"with nginx -t": [], "reload only": []}
    try:
        deadline = time.monotonic() + 600
        while not ctl.ready and time.monotonic() < deadline:
            time.sleep(0.2)
        first = next(o for o in objs if isinstance(o, Ingress))
        for c in range(changes * 2):
            variant = "with nginx -t" if c % 2 == 0 else "reload only"
            nginx.test_before_reload = variant == "with nginx -t"
            rule = first.rules[0]
            path = dataclasses.replace(rule.paths[0], path=f"/v{c}")
            changed = dataclasses.replace(first, rules=(IngressRule(rule.host, (path, IngressPath(
                "/", "Prefix", rule.paths[0].backend))),))
            snap = Snapshot.of([changed if o is first else o for o in objs])
            rendered = ctl.render(ctl.build(snap), ctl.templates.builtin)
            started = time.monotonic()
            result = nginx.apply(rendered.text, rendered.config_id, rendered.files)
            took = time.monotonic() - started
            assert result.ok, result.message
            out[variant].append(took)
    finally:
        ctl.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,3000")
    ap.add_argument("--changes", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressctl-bench-") as tmp:
        print(f"{'Ingresses':>9} | {'with nginx -t':>13} | {'reload only':>11} | ratio")
        for n in (int(x) for x in args.sizes.split(",")):
            r = measure(n, args.changes, Path(tmp))
            a, b = statistics.median(r["with nginx -t"]), statistics.median(r["reload only"])
            print(f"{n:>9} | {a:>12.2f}s | {b:>10.2f}s | {b / a:.2f}")


if __name__ == "__main__":
    main()
