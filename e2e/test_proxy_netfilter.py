"""The Service proxy with real packets: one behaviour table, run for iptables and nftables.

A node namespace with three pod namespaces (echo servers that report the peer address)
and a client namespace routed to the node (see e2e/netns.py). pod1 is on this node (n1),
pod2 and pod3 are "elsewhere" (n2, n3) as far as Local traffic policies are concerned.
The proxy backend runs in this process and applies its rules inside the node namespace.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ingressctl.objects import parse_object
from ingressctl.proxy.backends.base import CommandRunner, FragmentBackend, ProxyOptions
from ingressctl.proxy.backends.iptables import IptablesBackend
from ingressctl.proxy.backends.nftables import NftablesBackend
from ingressctl.proxy.core.tracker import ServiceTracker
from ingressctl.store import Store

from .netns import Topology, create_topology, tcp_ask, udp_ask

pytestmark = pytest.mark.netns

CLIENT = "192.168.50.2"
NODE = "192.168.50.1"
AFFINITY_TIMEOUT = 1
PODS = {"pod1": ("10.244.1.2", "n1"), "pod2": ("10.244.2.2", "n2"), "pod3": ("10.244.3.2", "n3")}


def service(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", None)
    ports = spec.pop("ports", [{"name": "http", "port": 80, "targetPort": 8080}])
    raw = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "e2e"},
           "spec": {"clusterIP": ip, "ports": ports, **spec}}
    if status:
        raw["status"] = {"loadBalancer": {"ingress": [{"ip": status}]}}
    return raw


def slice_(service_name: str, pods: list[str], port_name: str = "http", port: int = 8080,
           protocol: str = "TCP") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{service_name}-x", "namespace": "e2e",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [PODS[p][0]], "nodeName": PODS[p][1],
                           "conditions": {"ready": True}} for p in pods]}


ALL = ["pod1", "pod2", "pod3"]


def np(node_port: int) -> list[dict[str, Any]]:
    return [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": node_port}]


def objects(web_pods: list[str] = ALL) -> list[dict[str, Any]]:
    return [
        service("web", "10.96.0.10", type="LoadBalancer", externalIPs=["192.0.2.10"],
                ports=np(30080), status="203.0.113.10"),
        slice_("web", web_pods),
        service("sticky", "10.96.0.11", sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": AFFINITY_TIMEOUT}}),
        slice_("sticky", ALL),
        service("empty", "10.96.0.12", type="NodePort", ports=np(30012)),
        service("local", "10.96.0.13", type="LoadBalancer", externalTrafficPolicy="Local",
                ports=np(30013), status="203.0.113.13"),
        slice_("local", ["pod1", "pod2"]),
        service("remote", "10.96.0.14", type="LoadBalancer", externalTrafficPolicy="Local",
                ports=np(30014), status="203.0.113.14"),
        slice_("remote", ["pod2"]),
        service("dns", "10.96.0.15", ports=[{"name": "dns", "port": 53, "targetPort": 5353,
                                             "protocol": "UDP"}]),
        slice_("dns", ALL, port_name="dns", port=5353, protocol="UDP"),
        service("self", "10.96.0.16"),
        slice_("self", ["pod1"]),
    ]


@dataclasses.dataclass
class Proxy:
    topo: Topology
    backend: FragmentBackend
    store: Store
    tracker: ServiceTracker

    def load(self, raws: list[dict[str, Any]]) -> None:
        self.store.replace(None, [parse_object(r) for r in raws])
        table, changed = self.tracker.update(self.store.snapshot())
        self.backend.sync(table, changed)

    def from_client(self, ip: str, port: int, n: int = 1, timeout: float = 2.0) -> list[str]:
        return self.topo.client.run(lambda: [tcp_ask(ip, port, timeout) for _ in range(n)])

    def dump(self) -> list[str]:
        if isinstance(self.backend, NftablesBackend):
            text = self.topo.node.exec("nft", "list", "table", "ip", "ingressctl", check=False)
            return sorted(x.strip(" ,") for x in re.split(r"[\n{}]|, ", text) if x.strip(" ,"))
        text = self.topo.node.exec("iptables-save")
        return sorted(x for x in text.splitlines() if "ICP" in x)


BACKENDS = {"iptables": IptablesBackend, "nftables": NftablesBackend}


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with create_topology(3) as t:
        t.start_echo(tcp_port=8080, udp_port=5353)
        yield t


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def proxy(request: pytest.FixtureRequest, topo: Topology) -> Iterator[Proxy]:
    backend = BACKENDS[request.param](ProxyOptions(cluster_cidr="10.244.0.0/16"), CommandRunner(topo.node.name))
    backend.check()
    p = Proxy(topo, backend, Store(), ServiceTracker("n1"))
    try:
        p.load(objects())
        yield p
    finally:
        backend.cleanup()
    assert p.dump() == [], "cleanup left rules behind"


def pod_of(answer: str) -> str:
    return answer.split()[0]


def peer_ip(answer: str) -> str:
    return answer.split()[1].rsplit(":", 1)[0]


def test_cluster_ip_from_client_is_masqueraded(proxy: Proxy) -> None:
    for answer in proxy.from_client("10.96.0.10", 80, n=10):
        pod = pod_of(answer)
        assert peer_ip(answer) == PODS[pod][0].rsplit(".", 1)[0] + ".1"  # the node's address


def test_cluster_ip_from_the_node(proxy: Proxy) -> None:
    answers = proxy.topo.node.run(lambda: [tcp_ask("10.96.0.10", 80) for _ in range(5)])
    assert all(pod_of(a) in PODS for a in answers)


@pytest.mark.parametrize("ip,port", [(NODE, 30080), ("203.0.113.10", 80), ("192.0.2.10", 80)],
                         ids=["node-port", "load-balancer-ip", "external-ip"])
def test_external_addresses_reach_the_service(proxy: Proxy, ip: str, port: int) -> None:
    answers = proxy.from_client(ip, port, n=5)
    assert all(pod_of(a) in PODS and peer_ip(a) != CLIENT for a in answers)  # Cluster policy: masqueraded


def test_spread_over_all_endpoints(proxy: Proxy) -> None:
    counts = collections.Counter(pod_of(a) for a in proxy.from_client("10.96.0.10", 80, n=300))
    assert set(counts) == set(PODS)
    assert all(55 <= c <= 145 for c in counts.values()), counts  # 100 expected; > 5 sigma


def test_client_ip_affinity_sticks_then_expires(proxy: Proxy) -> None:
    first = {pod_of(a) for a in proxy.from_client("10.96.0.11", 80, n=20)}
    assert len(first) == 1
    sticky = first.pop()
    for _ in range(8):  # after the timeout a new choice is random: 1/3 chance to stay, per try
        time.sleep(AFFINITY_TIMEOUT + 0.3)
        if pod_of(proxy.from_client("10.96.0.11", 80)[0]) != sticky:
            return
    pytest.fail(f"affinity to {sticky} never expired after {AFFINITY_TIMEOUT}s (8 tries)")


@pytest.mark.parametrize("ip,port", [("10.96.0.12", 80), (NODE, 30012)], ids=["cluster-ip", "node-port"])
def test_no_endpoints_is_refused(proxy: Proxy, ip: str, port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        proxy.from_client(ip, port)


@pytest.mark.parametrize("ip,port", [("203.0.113.13", 80), (NODE, 30013)], ids=["lb-ip", "node-port"])
def test_local_policy_keeps_the_client_address(proxy: Proxy, ip: str, port: int) -> None:
    answers = proxy.from_client(ip, port, n=10)
    assert {pod_of(a) for a in answers} == {"pod1"}  # the only endpoint on this node
    assert {peer_ip(a) for a in answers} == {CLIENT}


@pytest.mark.parametrize("ip,port", [("203.0.113.14", 80), (NODE, 30014)], ids=["lb-ip", "node-port"])
def test_local_policy_without_local_endpoint_drops(proxy: Proxy, ip: str, port: int) -> None:
    with pytest.raises(TimeoutError):
        proxy.from_client(ip, port, timeout=1.0)
    # traffic from the node itself still reaches the (remote) endpoint
    assert pod_of(proxy.topo.node.run(lambda: tcp_ask("10.96.0.14", 80))) == "pod2"


def test_hairpin_pod_reaches_itself_through_its_service(proxy: Proxy) -> None:
    pod1 = proxy.topo.pods[0]
    answer = pod1.ns.run(lambda: tcp_ask("10.96.0.16", 80))
    assert pod_of(answer) == "pod1" and peer_ip(answer) == pod1.gateway


def test_udp_service(proxy: Proxy) -> None:
    answers = proxy.topo.client.run(lambda: [udp_ask("10.96.0.15", 53) for _ in range(10)])
    assert all(pod_of(a) in PODS for a in answers)


def test_removed_endpoint_gets_no_new_connections(proxy: Proxy) -> None:
    try:
        proxy.load(objects(web_pods=["pod1", "pod2"]))
        counts = collections.Counter(pod_of(a) for a in proxy.from_client("10.96.0.10", 80, n=60))
        assert set(counts) == {"pod1", "pod2"}, counts
    finally:
        proxy.load(objects())
    assert "pod3" in {pod_of(a) for a in proxy.from_client("10.96.0.10", 80, n=60)}


def test_partial_syncs_end_where_a_full_sync_starts(proxy: Proxy) -> None:
    """Apply a run of partial changes, then compare the kernel state with a fresh full sync."""
    changed = objects(web_pods=["pod2"])
    changed[2]["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] = 7
    changed += [service("extra", "10.96.0.30"), slice_("extra", ["pod3"])]
    changed = [o for o in changed if o["metadata"]["name"] not in ("self", "self-x")]
    try:
        for step in (objects(web_pods=["pod2"]), changed[:-1], changed):
            proxy.load(step)
        after_partials = proxy.dump()
        fresh = type(proxy.backend)(proxy.backend.options, CommandRunner(proxy.topo.node.name))
        fresh.sync(proxy.tracker.table, None)
        assert fresh.render(proxy.tracker.table) == proxy.backend.render(proxy.tracker.table)
        assert proxy.dump() == after_partials
    finally:
        proxy.backend.sync(proxy.tracker.table, None)
        proxy.load(objects())
