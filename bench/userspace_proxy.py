"""Throughput and latency through the userspace proxy vs direct vs iptables DNAT.

Two network namespaces this script creates (deleted at the end), joined by a veth pair:
`icu<pid>-back` holds the backend process (a sink on :9000 that answers with the byte count,
an echo on :9001) on 10.250.0.2; `icu<pid>-bench` holds the client (threads of this process
that entered it), `ingressctl proxy --mode userspace` as a separate process serving cluster
IP 127.96.0.10, and iptables DNAT rules from the iptables backend for cluster IP 10.96.0.10.
Every path reaches the backend over the veth pair (MTU 1500), as a node reaches a pod: with
the backend in the client's own namespace the direct path ran over loopback (MTU 65536) and
flattered it. Every loop is bounded in count and in time.

    sudo .venv/bin/python bench/userspace_proxy.py [--mib 256] [--conns 2000] [--rr 5000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e.netns import Netns, sh
from ingressctl.objects import parse_object
from ingressctl.proxy.backends.base import CommandRunner, ProxyOptions
from ingressctl.proxy.backends.iptables import IptablesBackend
from ingressctl.proxy.core.build import build_table
from ingressctl.store import Snapshot

BACKEND_IP = "10.250.0.2"
USERSPACE_IP = "127.96.0.10"
CHUNK = 1 << 20
TIME_LIMIT = 20.0  # seconds per measurement, whatever the counts say

BACKEND = r"""
import socket, struct, threading
def serve(port, handler):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.250.0.2", port)); s.listen(1024)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()
def sink(c):
    buf, total = bytearray(1 << 20), 0
    with c:
        while n := c.recv_into(buf):
            total += n
        c.sendall(struct.pack("!Q", total))
def echo(c):
    with c:
        try:
            while data := c.recv(65536):
                c.sendall(data)
        except OSError:
            pass
threading.Thread(target=serve, args=(9001, echo), daemon=True).start()
serve(9000, sink)
"""


def service(name: str, cluster_ip: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: bench}}
spec:
  clusterIP: {cluster_ip}
  ports: [{{name: sink, port: 9000}}, {{name: echo, port: 9001}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: bench, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: sink, port: 9000}}, {{name: echo, port: 9001}}]
endpoints: [{{addresses: [{BACKEND_IP}], conditions: {{ready: true}}}}]
"""


def throughput(ip: str, mib: int) -> float:
    """MiB/s of one connection sending `mib` MiB (or what fits in TIME_LIMIT) to the sink."""
    data = b"x" * CHUNK
    with socket.create_connection((ip, 9000), timeout=30) as s:
        start, sent = time.perf_counter(), 0
        while sent < mib * CHUNK and time.perf_counter() - start < TIME_LIMIT:
            s.sendall(data)
            sent += CHUNK
        s.shutdown(socket.SHUT_WR)
        got = struct.unpack("!Q", s.recv(8))[0]
        elapsed = time.perf_counter() - start
    assert got == sent, f"sink got {got} of {sent} bytes"
    return sent / CHUNK / elapsed


def connect_latency(ip: str, n: int) -> list[float]:
    """Seconds for connect + 64-byte echo + close, n times (bounded by TIME_LIMIT)."""
    out, msg, deadline = [], b"p" * 64, time.perf_counter() + TIME_LIMIT
    for _ in range(n):
        if time.perf_counter() > deadline:
            break
        t0 = time.perf_counter()
        with socket.create_connection((ip, 9001), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(64)
        out.append(time.perf_counter() - t0)
    return out


def rr_latency(ip: str, n: int) -> list[float]:
    """Seconds per 64-byte round trip on one kept-open connection."""
    out, msg, deadline = [], b"q" * 64, time.perf_counter() + TIME_LIMIT
    with socket.create_connection((ip, 9001), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(64)
            out.append(time.perf_counter() - t0)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def answers(ns: Netns, ip: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return ns.run(lambda: len(rr_latency(ip, 1)) == 1, timeout=10)
        except OSError:
            return False
    return check


def measure(ns: Netns, paths: dict[str, str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Median of --repeat rounds; each round runs every path once, so load changes on this
    shared machine hit all paths alike."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for _ in range(args.repeat):
        for name, ip in paths.items():
            runs[name].append(measure_once(ns, ip, args))
    return {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}


PROXY_CPU: list[float] = []  # userspace proxy CPU seconds per GiB, one per throughput run
MACHINE: dict[str, list[tuple[float, float]]] = {}  # path -> (CPU-seconds per GiB, busy share), whole machine


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine so far (/proc/stat; softirq included)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    total, idle = sum(fields), fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_once(ns: Netns, ip: str, args: argparse.Namespace) -> dict[str, float]:
    before = cpu_seconds(args.proxy_pid) if ip == USERSPACE_IP else 0.0
    busy, total = machine_cpu()
    tput = ns.run(lambda: throughput(ip, args.mib), timeout=120)
    busy2, total2 = machine_cpu()
    gib = args.mib / 1024 if tput * TIME_LIMIT >= args.mib else tput * TIME_LIMIT / 1024
    MACHINE.setdefault(next(k for k, v in args.paths.items() if v == ip), []).append(
        ((busy2 - busy) / gib, (busy2 - busy) / max(total2 - total, 1e-9)))
    if ip == USERSPACE_IP:  # CPU per byte: a figure the noise of a shared machine hardly moves
        PROXY_CPU.append((cpu_seconds(args.proxy_pid) - before) / (args.mib / 1024))
    conn = ns.run(lambda: connect_latency(ip, args.conns), timeout=120)
    rr = ns.run(lambda: rr_latency(ip, args.rr), timeout=120)
    return {"MiB/s": tput, "conn p50 ms": p(conn, 50) * 1e3, "conn p99 ms": p(conn, 99) * 1e3,
            "rr p50 us": p(rr, 50) * 1e6, "rr p99 us": p(rr, 99) * 1e6, "conns/s": len(conn) / sum(conn)}


def print_table(results: dict[str, dict[str, float]]) -> None:
    cols = list(next(iter(results.values())))
    direct = results["direct"]
    print(f"{'path':<12}" + "".join(f"{c:>14}" for c in cols))
    for name, row in results.items():
        print(f"{name:<12}" + "".join(f"{row[c]:>14.1f}" for c in cols))
    print()
    print("ratio to direct (throughput and conns/s: higher is better; latencies: lower is better)")
    for name, row in results.items():
        if name != "direct":
            print(f"{name:<12}" + "".join(f"{row[c] / direct[c]:>14.2f}" for c in cols))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256, help="MiB sent by the throughput test (default 256)")
    ap.add_argument("--conns", type=int, default=2000, help="connections in the latency test (default 2000)")
    ap.add_argument("--rr", type=int, default=5000, help="round trips on one connection (default 5000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per path; the table shows medians (default 3)")
    ap.add_argument("--no-iptables", action="store_true", help="skip the iptables DNAT row")
    args = ap.parse_args()
    name, back_name = f"icu{os.getpid()}-bench", f"icu{os.getpid()}-back"
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.TemporaryDirectory()
    sh("ip", "netns", "add", name)
    sh("ip", "netns", "add", back_name)
    try:
        ns, back = Netns(name), Netns(back_name)
        for n in (ns, back):
            n.exec("ip", "link", "set", "lo", "up")
        ns.exec("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        ns.exec("ip", "link", "set", "v1", "netns", back_name)
        ns.exec("ip", "addr", "add", "10.250.0.1/24", "dev", "v0")
        back.exec("ip", "addr", "add", f"{BACKEND_IP}/24", "dev", "v1")
        ns.exec("ip", "link", "set", "v0", "up")
        back.exec("ip", "link", "set", "v1", "up")
        ns.exec("ip", "route", "add", "default", "dev", "v0")
        procs.append(subprocess.Popen(["ip", "netns", "exec", back_name, sys.executable, "-c", BACKEND]))
        wait_until(answers(ns, BACKEND_IP), 10, "backend")
        paths = {"direct": BACKEND_IP}

        Path(tmp.name, "svc.yaml").write_text(service("us", "127.96.0.10"))
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-m", "ingressctl.cli", "proxy", "--mode",
             "userspace", "--manifests", tmp.name, "--status-port", "0", "--nodeport-addresses", "127.0.0.1/32"],
            cwd=ROOT))
        wait_until(answers(ns, "127.96.0.10"), 20, "userspace proxy")
        paths["userspace"] = USERSPACE_IP
        args.proxy_pid = procs[-1].pid  # `ip netns exec` execs the proxy: same pid

        if not args.no_iptables:
            import yaml
            objs = [parse_object(d) for d in yaml.safe_load_all(service("ipt", "10.96.0.10"))]
            backend = IptablesBackend(ProxyOptions(), CommandRunner(netns=name))
            backend.sync(build_table(Snapshot.of(objs)), None)
            wait_until(answers(ns, "10.96.0.10"), 10, "iptables DNAT")
            paths["iptables"] = "10.96.0.10"
        args.paths = paths
        print_table(measure(ns, paths, args))
        print("\nthe whole machine during the throughput runs (median): CPU-seconds per GiB, and the share "
              f"of its {os.cpu_count()} CPUs busy")
        for path, runs in MACHINE.items():
            print(f"{path:<12}{statistics.median(r[0] for r in runs):>14.2f}"
                  f"{statistics.median(r[1] for r in runs) * 100:>13.0f}%")
        if PROXY_CPU:
            print(f"\nuserspace proxy process: {statistics.median(PROXY_CPU):.2f} CPU-seconds per GiB relayed "
                  "(median; user+system)")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "del", back_name, check=False)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
