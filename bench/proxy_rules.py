"""Benchmark: Service proxy rule syncs and DNAT connection rate, inside network namespaces.

    sudo .venv/bin/python bench/proxy_rules.py [--sizes 1000,10000] [--backends iptables,nftables]

Prints one table: for each backend and number of Services (x 3 endpoints): the time to
build the ServiceTable from the store (tracker update), a full sync (render + apply, first
sync in an empty namespace), a second full sync (periodic resync over existing rules), and
one changed Service (partial: tracker update + render + apply), with kube-proxy v1.28's
iptables-nft figures as reference. Then connections per second from a client namespace:
direct to a pod vs through the Service's cluster IP, with one Service and with the largest
size loaded (wrk with `Connection: close` against nginx in a pod). Every namespace is deleted at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2e.netns import Topology, create_topology
from ingressctl.objects import parse_object
from ingressctl.proxy.backends.base import CommandRunner, FragmentBackend, ProxyOptions
from ingressctl.proxy.backends.iptables import IptablesBackend
from ingressctl.proxy.backends.nftables import NftablesBackend
from ingressctl.proxy.core.tracker import ServiceTracker
from ingressctl.store import Store

BACKENDS = {"iptables": IptablesBackend, "nftables": NftablesBackend}
# kube-proxy v1.28 iptables mode, iptables-nft, as quoted in issue 6: (full, partial) seconds
REFERENCE = {1000: (0.58, 0.064), 10000: (166.0, 0.9)}


def service_objects(i: int, pods: tuple[int, ...] = (1, 2, 3)) -> list[Any]:
    ip = f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "bench"},
           "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
           "metadata": {"name": f"s{i}-a", "namespace": "bench", "labels": {"kubernetes.io/service-name": f"s{i}"}},
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": [f"10.244.{p}.2"], "nodeName": "n1"} for p in pods]}
    return [parse_object(svc), parse_object(eps)]


def fill(store: Store, n: int) -> None:
    store.replace(None, [o for i in range(n) for o in service_objects(i)])


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def sync_row(topo: Topology, name: str, n: int) -> dict[str, Any]:
    backend: FragmentBackend = BACKENDS[name](ProxyOptions(cluster_cidr="10.244.0.0/16"),
                                              CommandRunner(topo.node.name))
    store, tracker = Store(), ServiceTracker("n1")
    fill(store, n)
    t_build, (table, _) = timed(lambda: tracker.update(store.snapshot()))
    t_full, full = timed(lambda: backend.sync(table, None))
    t_resync, _ = timed(lambda: backend.sync(table, None))
    store.apply(service_objects(n // 2, pods=(1, 2))[1])  # one endpoint of one Service goes away

    def partial() -> Any:
        t, changed = tracker.update(store.snapshot())
        return backend.sync(t, changed)
    t_partial, part = timed(partial)
    assert not part.full and part.services_changed == 1
    return {"backend": name, "services": n, "rules": full.rules_written, "build": t_build,
            "full": t_full, "resync": t_resync, "partial": t_partial, "backend_obj": backend, "store": store,
            "tracker": tracker}


NGINX_CONF = """worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 8081; location / {{ return 200 "ok\\n"; }} }} }}
"""


def start_nginx(topo: Topology, directory: Path) -> subprocess.Popen[bytes]:
    """nginx on pod1:8081: a C server, so the rate measures the kernel path, not Python."""
    directory.mkdir(parents=True, exist_ok=True)
    # no TIME_WAIT on the server: with tens of thousands of masqueraded connections per run the
    # random source ports would otherwise collide with old ones and stall on SYN retransmits
    topo.pods[0].ns.exec("sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=0")
    (directory / "nginx.conf").write_text(NGINX_CONF.format(d=directory))
    proc = subprocess.Popen(["ip", "netns", "exec", topo.pods[0].ns.name, "nginx", "-p", str(directory),
                             "-c", str(directory / "nginx.conf")])
    for _ in range(50):
        if wrk_rate(topo, "http://10.244.1.2:8081/", "1s") > 0:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("nginx in pod1 did not answer")


def wrk_rate(topo: Topology, url: str, duration: str = "2s") -> float:
    """New connections per second (Connection: close) from the client namespace."""
    out = topo.client.exec("wrk", "-t1", "-c4", f"-d{duration}", "-H", "Connection: close", url, check=False)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--backends", default="iptables,nftables")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    names = args.backends.split(",")
    with create_topology(3, prefix=f"icp{os.getpid()}b") as topo, \
            tempfile.TemporaryDirectory(prefix="icp-bench-") as tmp:
        nginx = start_nginx(topo, Path(tmp))
        rows = []
        for name in names:
            for n in sizes:
                row = sync_row(topo, name, n)
                rows.append(row)
                ref = REFERENCE.get(n)
                print(f"{name:9} {n:6} Services: {row['rules']:7} rules  build {row['build']:.3f}s  "
                      f"full {row['full']:.3f}s  resync {row['resync']:.3f}s  partial {row['partial']*1000:.1f}ms"
                      + (f"  (kube-proxy {ref[0]}s / {ref[1] * 1000:.0f}ms)" if ref else ""), flush=True)
                if n != max(sizes):
                    row["backend_obj"].cleanup()
            rates = rates_for(topo, rows[-1])
            rows[-1]["rates"] = rates
            rows[-1]["backend_obj"].cleanup()
        nginx.terminate()
        nginx.wait(timeout=10)
        print_table(rows, sizes)
    return 0


def rates_for(topo: Topology, row: dict[str, Any]) -> dict[str, float]:
    """Connection rates with the largest table loaded, to one more Service (pod1's nginx)."""
    rate_svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rate", "namespace": "bench"},
                "spec": {"clusterIP": "10.127.0.1", "ports": [{"name": "http", "port": 8081}]}}
    rate_eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": "rate-a", "namespace": "bench",
                             "labels": {"kubernetes.io/service-name": "rate"}},
                "ports": [{"name": "http", "port": 8081, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.1.2"], "nodeName": "n1"}]}
    for raw in (rate_svc, rate_eps):
        row["store"].apply(parse_object(raw))
    table, changed = row["tracker"].update(row["store"].snapshot())
    row["backend_obj"].sync(table, changed)
    direct, dnat = [], []
    for _ in range(5):  # alternate and take medians: the machine is shared and noisy
        direct.append(wrk_rate(topo, "http://10.244.1.2:8081/"))
        dnat.append(wrk_rate(topo, "http://10.127.0.1:8081/"))
    return {"direct": statistics.median(direct), "dnat": statistics.median(dnat)}


def print_table(rows: list[dict[str, Any]], sizes: list[int]) -> None:
    print()
    print("| backend | Services | rules+elements | build table | full sync | full resync | one change "
          "| kube-proxy iptables-nft full / one change | full vs ref | change vs ref |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        ref = REFERENCE.get(r["services"])
        refs = f"{ref[0]} s / {ref[1] * 1000:.0f} ms" if ref else "-"
        ratio_full = f"{r['full'] / ref[0]:.2f}x" if ref else "-"
        ratio_part = f"{r['partial'] / ref[1]:.2f}x" if ref else "-"
        print(f"| {r['backend']} | {r['services']} | {r['rules']} | {r['build']:.3f} s | {r['full']:.3f} s "
              f"| {r['resync']:.3f} s | {r['partial'] * 1000:.1f} ms | {refs} | {ratio_full} | {ratio_part} |")
    print()
    print("| backend | Services loaded | direct conn/s | via cluster IP conn/s | DNAT / direct |")  # wrk
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        if "rates" in r:
            d, v = r["rates"]["direct"], r["rates"]["dnat"]
            print(f"| {r['backend']} | {r['services']} | {d:.0f} | {v:.0f} | {v / d:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
