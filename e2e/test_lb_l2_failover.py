"""Layer-2 LoadBalancer failover in network namespaces.

    node1 192.168.77.11 ─┐
    node2 192.168.77.12 ─┼─ br0 (namespace "lan")
    client 192.168.77.2 ─┘

Both nodes run `ingressctl proxy --mode userspace --lb-pools ... --lb-announce-interface
eth0` on the same manifests; an flock elects the announcing node. Each node's endpoint is
an echo server on its own loopback that answers with the node's name, so the client sees
which node served it. Stopping the leader moves the LoadBalancer address to the other node
(address added, gratuitous ARP) and the client reaches the Service through it.
Namespaces are `icu<pid>-*` and are deleted even when the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import INGRESSCTL, ROOT
from .netns import EchoServer, Netns, sh

pytestmark = pytest.mark.netns

PREFIX = f"icu{os.getpid()}"
VIP = "192.168.77.100"
NODES = {"node1": "192.168.77.11", "node2": "192.168.77.12"}
CLIENT = "192.168.77.2"

MANIFESTS = """apiVersion: v1
kind: Service
metadata: {name: edge, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: ingressctl.io/lb
  ports: [{name: http, port: 8080, targetPort: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: edge-1, namespace: default, labels: {kubernetes.io/service-name: edge}}
addressType: IPv4
ports: [{name: http, port: 9000}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
"""
POOLS = f"pools: [{{name: lan, addresses: [{VIP}-{VIP}]}}]\n"


class Lan:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.servers: list[EchoServer] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def add(self, role: str) -> Netns:
        name = f"{PREFIX}-{role}"
        sh("ip", "netns", "add", name)
        self.created.append(name)
        ns = Netns(name)
        ns.exec("ip", "link", "set", "lo", "up")
        return ns

    def build(self) -> dict[str, Netns]:
        lan = self.add("lan")
        lan.exec("ip", "link", "add", "br0", "type", "bridge")
        lan.exec("ip", "link", "set", "br0", "up")
        out = {}
        for i, (role, ip) in enumerate([*NODES.items(), ("client", CLIENT)]):
            ns = self.add(role)
            sh("ip", "link", "add", f"p{i}", "netns", lan.name, "type", "veth", "peer", "name", "eth0",
               "netns", ns.name)
            lan.exec("ip", "link", "set", f"p{i}", "master", "br0", "up")
            ns.exec("ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            ns.exec("ip", "link", "set", "eth0", "up")
            out[role] = ns
        return out

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for s in self.servers:
            s.stop()
        for name in reversed(self.created):
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def lan() -> Iterator[Lan]:
    net = Lan()
    try:
        yield net
    finally:
        net.close()


def ask(client: Netns) -> str:
    def once() -> str:
        try:
            with socket.create_connection((VIP, 8080), timeout=1.0) as s:
                s.settimeout(1.0)
                return s.recv(100).decode().split(" ")[0]
        except OSError:
            return ""
    return client.run(once)


def wait_for_answer(client: Netns, want: str, timeout: float = 20.0) -> str:
    deadline, got = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        got = ask(client)
        if got == want:
            return got
        time.sleep(0.2)
    return got


def test_stopping_the_leader_moves_the_address_to_the_other_node(lan: Lan, tmp_path: Path) -> None:
    ns = lan.build()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "edge.yaml").write_text(MANIFESTS)
    (tmp_path / "pools.yaml").write_text(POOLS)
    logs = {}
    for role in NODES:
        lan.servers.append(EchoServer(ns[role], role, "127.0.0.1", 9000, 9001))

    def start(role: str) -> subprocess.Popen[bytes]:
        logs[role] = (tmp_path / f"{role}.log").open("w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns[role].name, *INGRESSCTL, "-v", "proxy", "--mode", "userspace",
             "--manifests", str(tmp_path / "m"), "--lb-pools", str(tmp_path / "pools.yaml"),
             "--lb-announce-interface", "eth0", "--lb-leader-lock", str(tmp_path / "leader.lock"),
             "--status-port", "0", "--min-sync-period", "0.1", "--node-name", role],
            cwd=ROOT, stdout=logs[role], stderr=subprocess.STDOUT)
        lan.procs.append(proc)
        return proc

    try:
        first = start("node1")
        assert wait_for_answer(ns["client"], "node1") == "node1", "node1 never served the LB address"
        start("node2")
        time.sleep(1.0)  # node2 is up and waiting for the lock
        assert {ask(ns["client"]) for _ in range(3)} == {"node1"}
        assert VIP not in ns["node2"].exec("ip", "-4", "addr", "show", "dev", "eth0")

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
        assert VIP not in ns["node1"].exec("ip", "-4", "addr", "show", "dev", "eth0")
        assert wait_for_answer(ns["client"], "node2") == "node2", "no failover to node2"
        assert VIP in ns["node2"].exec("ip", "-4", "addr", "show", "dev", "eth0")
        node2_mac = ns["node2"].exec("cat", "/sys/class/net/eth0/address").strip()
        assert node2_mac in ns["client"].exec("ip", "neigh", "show", VIP)
    finally:
        for f in logs.values():
            f.close()
        for role in logs:
            print(f"--- {role}\n" + (tmp_path / f"{role}.log").read_text()[-3000:])
