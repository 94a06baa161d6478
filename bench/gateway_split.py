"""Gateway API weighted backendRefs: the share of requests each backend gets, measured
through real nginx (split_clients on $request_id) with echo backends on loopback.

Run: .venv/bin/python bench/gateway_split.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.harness import INGRESS_CLASS, Backends, LocalController, manifests_for_backends

WEIGHTS = [(1, 1), (3, 1), (9, 1), (99, 1)]


def _routes() -> str:
    docs = ["apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: ours}\n"
            "spec: {controllerName: ingressctl.io/gateway-controller}\n",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
            "spec:\n  gatewayClassName: ours\n  listeners: [{name: http, protocol: HTTP, port: 80}]\n"]
    for wa, wb in WEIGHTS:
        docs.append(f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{wa}, namespace: default}}\n"
                    f"spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [w{wa}.test]\n"
                    f"  rules: [{{backendRefs: [{{name: a, port: 80, weight: {wa}}}, {{name: b, port: 80, weight: {wb}}}]}}]\n")
    return "---\n".join(docs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    n = ap.parse_args().requests
    backends = Backends()
    with tempfile.TemporaryDirectory() as tmp:
        ctl = LocalController(Path(tmp))
        ctl.write("00-class.yaml", INGRESS_CLASS)
        ctl.start()
        try:
            for name in ("a", "b"):
                ctl.write(f"svc-{name}.yaml", manifests_for_backends("default", name, [backends.start(name)]))
            ctl.write("routes.yaml", _routes())
            ctl.wait_for(lambda: ctl.get(f"w{WEIGHTS[-1][0]}.test").status == 200, timeout=20, what="routes live")
            print(f"{'weights a:b':>12} {'expected a':>11} {'measured a':>11} {'requests':>9}")
            for wa, wb in WEIGHTS:
                got = sum(ctl.get(f"w{wa}.test").backend == "a" for _ in range(n))
                print(f"{f'{wa}:{wb}':>12} {wa / (wa + wb):>11.2%} {got / n:>11.2%} {n:>9}")
        finally:
            ctl.stop()
            backends.stop()


if __name__ == "__main__":
    main()
