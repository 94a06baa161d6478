"""Benchmark: how long nginx takes to load the configuration (`nginx -t`) and its peak
memory, by size and layout, side by side in one run (issue 18 §1-2).

Each size renders N Ingresses (one host, one Prefix path, own Service with 3 endpoints,
every 4th host with its own TLS Secret) exactly as `ingressctl run` does with the Lua
balancer, then times `nginx -t` (median of --runs) in each layout:

  a certificate and a block per host   the layout before issue 18 §1: each TLS host names
                                       its certificate, every server gets an SSL context
  certificates by Lua                  only each port's default server has an SSL context;
                                       a ClientHello callback sets the host's certificate
  and shared blocks                    hosts whose blocks differ only in name and backend
                                       share one (nginx/merge.py): what ingressctl runs
  templates of REV (--before REV)      the running layout with an older commit's templates

Earlier figures (10,000 Ingresses): one upstream block per Service before the shared
balancer block, 8.84 -> 5.87 s (nginx finds upstream blocks by a linear scan). The cost
left after that was the Lua module's OpenSSL context per merged location
(bench/nginx_lua_contexts.py), which shared blocks remove with the blocks themselves.

    .venv/bin/python bench/nginx_load.py [--sizes 1000,3000,10000] [--runs 3] [--before REV]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_render import objects


def _tls_objects(n: int) -> list:
    from ingressctl.objects import parse_object
    from tests.factory import tls_secret

    secret = tls_secret("t", "bench.example.com")
    data = {k: base64.b64encode(v).decode() for k, v in secret.data.items()}  # type: ignore[attr-defined]
    out = []
    for i in range(0, n, 4):
        ns, name = f"ns{i % 50}", f"app{i}"
        out.append(parse_object({"kind": "Secret", "type": "kubernetes.io/tls",
                                 "metadata": {"name": f"{name}-tls", "namespace": ns}, "data": data}))
    return out


def _with_tls(objs: list, n: int) -> list:
    import dataclasses

    from ingressctl.objects import Ingress, IngressTLS
    out = []
    for o in objs:
        if isinstance(o, Ingress) and int(o.meta.name[3:]) % 4 == 0:
            o = dataclasses.replace(o, tls=(IngressTLS((o.rules[0].host,), f"{o.meta.name}-tls"),))
        out.append(o)
    return out + _tls_objects(n)


def _templates_at(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, "templates/"],
                           capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if name.endswith(".j2"):
            text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{name}"], capture_output=True,
                                  text=True, check=True).stdout
            (into / Path(name).name).write_text(text)
    return into


LAYOUTS = {  # ControllerOptions that select a layout; the last is what ingressctl runs
    "a certificate and a block per host": {"certificates_by_lua": False, "merge_min": 0},
    "certificates by Lua": {"merge_min": 0},
    "and shared blocks": {},
}


def load(n: int, layout: dict, template_dir: Path | None, runs: int, work: Path) -> tuple[float, float]:
    """Median seconds of `nginx -t` and its peak RSS (MB) for N Ingresses in one layout."""
    from ingressctl.controller import Controller, ControllerOptions
    from ingressctl.nginx.process import Nginx
    from ingressctl.store import Store

    store = Store()
    store.replace(None, _with_tls(objects(n), n))
    state = work / f"state-{n}-{len(os.listdir(work))}"
    opts = ControllerOptions(state_dir=state, http_port=18080, https_port=18443, dynamic_endpoints=True,
                             template_dir=template_dir, **layout)
    ctl = Controller(store, opts)
    rendered = ctl.render_snapshot(store.snapshot())
    ctl.prepare_state(rendered)
    nginx = Nginx(opts.prefix)
    nginx.prepare()
    conf = opts.prefix / "bench.conf"
    conf.write_text(rendered.text)
    times, peaks = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PEAK, nginx.binary, "-t", "-q", "-p", str(opts.prefix),
                              "-c", str(conf)], capture_output=True, text=True, check=True).stdout.split()
        assert out[0] == "0", f"nginx -t failed for {n} Ingresses ({layout})"
        times.append(float(out[1]))
        peaks.append(int(out[2]) / 1024)
    return statistics.median(times), max(peaks)


# A child's peak RSS counts the memory of the process it was forked from (the kernel keeps
# the old address space's high-water mark at exec): nginx is forked from this small
# interpreter, not from the benchmark's large one, so the peak is nginx's (at least ~10 MB).
PEAK = """import os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), time.monotonic() - started, usage.ru_maxrss)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,3000,10000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", help="also the templates of this commit, in the running layout")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingressctl-bench-") as tmp:
        work = Path(tmp)
        layouts = [(name, layout, None) for name, layout in LAYOUTS.items()]
        if args.before:
            layouts.insert(0, (f"templates of {args.before}", {}, _templates_at(args.before, work / "before")))
        print("nginx -t, median seconds (peak MB); ratio: the running layout to the first")
        print(f"{'Ingresses':>9} | " + " | ".join(f"{name:>34}" for name, _, _ in layouts) + " | ratio")
        for n in (int(x) for x in args.sizes.split(",")):
            cells = [load(n, layout, tpl, args.runs, work) for _, layout, tpl in layouts]
            print(f"{n:>9} | " + " | ".join(f"{f'{t:.2f} s ({mb:.0f} MB)':>34}" for t, mb in cells)
                  + f" | {cells[-1][0] / cells[0][0]:.2f}")


if __name__ == "__main__":
    main()
