"""Stale UDP conntrack entries with real packets, for iptables and nftables.

A client keeps one UDP socket (one source port) per frontend, cluster IP and nodePort, and
is answered by endpoint X; X is removed from the EndpointSlice and the sync loop syncs.
With the conntrack cleaner the next datagram reaches the other endpoint; without it (the
control case) the kernel's entry keeps sending it to X, which proves the test would catch
a cleaner that deleted nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from ingressctl.objects import parse_object
from ingressctl.proxy.backends.base import CommandRunner, ProxyOptions
from ingressctl.proxy.backends.iptables import IptablesBackend
from ingressctl.proxy.backends.nftables import NftablesBackend
from ingressctl.proxy.core.tracker import ServiceTracker
from ingressctl.proxy.sync import SyncLoop
from ingressctl.proxy.system.conntrack import ConntrackCleaner
from ingressctl.store import Store

from .netns import Topology, create_topology

pytestmark = pytest.mark.netns

CLUSTER_IP, NODE_PORT = "10.96.0.15", 30053
PODS = {"pod1": "10.244.1.2", "pod2": "10.244.2.2"}
BACKENDS = {"iptables": IptablesBackend, "nftables": NftablesBackend}


def objects(pods: list[str]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns", "namespace": "e2e"},
         "spec": {"type": "NodePort", "clusterIP": CLUSTER_IP,
                  "ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP",
                             "nodePort": NODE_PORT}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "dns-x", "namespace": "e2e", "labels": {"kubernetes.io/service-name": "dns"}},
         "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}],
         "endpoints": [{"addresses": [PODS[p]], "nodeName": "n1", "conditions": {"ready": True}}
                       for p in pods]},
    ]


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with create_topology(2, prefix=f"ict{os.getpid()}") as t:
        t.start_echo(tcp_port=8080, udp_port=5353)
        yield t


def ask(sock: socket.socket, target: tuple[str, int]) -> str:
    """One datagram from the socket's fixed source port; the name of the pod that answered."""
    sock.sendto(b"ping", target)
    data, _ = sock.recvfrom(2048)
    return data.decode().split()[0]


@pytest.mark.parametrize("cleanup", [True, False], ids=["with-cleanup", "control-without-cleanup"])
@pytest.mark.parametrize("mode", sorted(BACKENDS))
def test_removed_udp_endpoint_loses_its_flows(topo: Topology, mode: str, cleanup: bool) -> None:
    backend = BACKENDS[mode](ProxyOptions(cluster_cidr="10.244.0.0/16"), CommandRunner(topo.node.name))
    backend.check()
    store = Store()
    cleaner = ConntrackCleaner(netns=topo.node.name) if cleanup else None
    loop = SyncLoop(backend, store.snapshot, ServiceTracker("n1"), cleaner=cleaner)
    targets = [(CLUSTER_IP, 53), (topo.node_ip, NODE_PORT)]
    socks: list[socket.socket] = []
    try:
        topo.node.exec("conntrack", "-F", check=False)  # nothing left from an earlier case
        store.replace(None, [parse_object(r) for r in objects(sorted(PODS))])
        loop.sync_once(full=True)
        for _ in targets:
            socks.append(topo.client.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
            socks[-1].settimeout(2.0)
        first = [ask(s, t) for s, t in zip(socks, targets, strict=True)]
        for s, t, pod in zip(socks, targets, first, strict=True):
            assert [ask(s, t) for _ in range(3)] == [pod] * 3  # one source port: one entry, one pod
        for gone in sorted(set(first)):
            store.replace(None, [parse_object(r) for r in objects([p for p in PODS if p != gone])])
            assert loop.sync_once(full=False) is not None
            for s, t, pod in zip(socks, targets, first, strict=True):
                if pod == gone:
                    answer = ask(s, t)
                    assert (answer != gone) if cleanup else (answer == gone), (t, gone, answer)
            store.replace(None, [parse_object(r) for r in objects(sorted(PODS))])
            loop.sync_once(full=False)
        if cleaner is not None:
            assert cleaner.deleted >= 2 and cleaner.errors == 0
    finally:
        for s in socks:
            s.close()
        backend.cleanup()
