"""proxy.build: Services + EndpointSlices + node -> ServiceTable (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from ingressctl.objects import parse_object
from ingressctl.proxy.core.build import build_table
from ingressctl.proxy.core.model import ServicePortKey
from ingressctl.store import Snapshot


def svc(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    for k in ("labels", "annotations"):
        if k in spec:
            meta[k] = spec.pop(k)
    status = spec.pop("status", None)
    spec.setdefault("clusterIP", "10.96.0.10")
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": 8080}])
    raw: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}
    if status:
        raw["status"] = status
    return raw


def eps(service: str, endpoints: list[dict[str, Any]], ns: str = "default", name: str = "",
        ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name or f"{service}-a", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def ep(ip: str, node: str = "n1", ready: bool = True, serving: bool | None = None,
       terminating: bool = False) -> dict[str, Any]:
    cond: dict[str, Any] = {"ready": ready, "terminating": terminating}
    if serving is not None:
        cond["serving"] = serving
    return {"addresses": [ip], "nodeName": node, "conditions": cond}


def table(*raws: dict[str, Any], node: str = "n1"):  # type: ignore[no-untyped-def]
    return build_table(Snapshot.of([parse_object(r) for r in raws]), node_name=node)


WEB = ServicePortKey("default", "web", "http", "TCP")


# (case, objects, expected: {attribute-path: value} on the 'web' http entry)
CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("clusterip-basic", [svc("web"), eps("web", [ep("10.1.0.2"), ep("10.1.0.3", node="n2")])],
     {"cluster_ips": ("10.96.0.10",), "port": 80, "node_port": 0,
      "cluster": ["10.1.0.2:8080", "10.1.0.3:8080"], "local": ["10.1.0.2:8080"]}),
    ("not-ready-left-out", [svc("web"), eps("web", [ep("10.1.0.2"), ep("10.1.0.3", ready=False)])],
     {"cluster": ["10.1.0.2:8080"]}),
    ("terminating-only-when-none-ready",
     [svc("web"), eps("web", [ep("10.1.0.2", ready=False, serving=True, terminating=True),
                              ep("10.1.0.3", ready=False, serving=False, terminating=True)])],
     {"cluster": ["10.1.0.2:8080"]}),
    ("terminating-ignored-when-ready-exist",
     [svc("web"), eps("web", [ep("10.1.0.2", ready=False, serving=True, terminating=True),
                              ep("10.1.0.4")])],
     {"cluster": ["10.1.0.4:8080"]}),
    ("nodeport-and-external", [
        svc("web", type="NodePort", externalIPs=["192.0.2.7"],
            ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]),
        eps("web", [ep("10.1.0.2")])],
     {"node_port": 30080, "external_ips": ("192.0.2.7",), "has_external": True}),
    ("loadbalancer-status-ips-and-ranges", [
        svc("web", type="LoadBalancer", loadBalancerSourceRanges=["198.51.100.0/24"],
            externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "nodePort": 30081}],
            status={"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example"}]}}),
        eps("web", [ep("10.1.0.2", node="n2"), ep("10.1.0.3")])],
     {"load_balancer_ips": ("203.0.113.9",), "load_balancer_source_ranges": ("198.51.100.0/24",),
      "external_local": True, "cluster": ["10.1.0.2:8080", "10.1.0.3:8080"],
      "external": ["10.1.0.3:8080"]}),
    ("clusterip-ignores-nodeport-field", [
        svc("web", ports=[{"name": "http", "port": 80, "nodePort": 30082}]), eps("web", [])],
     {"node_port": 0, "has_external": False, "external_local": False}),
    ("affinity-default-timeout", [svc("web", sessionAffinity="ClientIP"), eps("web", [])],
     {"uses_affinity": True, "affinity_timeout": 10800}),
    ("affinity-timeout", [svc("web", sessionAffinity="ClientIP",
                              sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}}), eps("web", [])],
     {"affinity_timeout": 5}),
    ("internal-local", [svc("web", internalTrafficPolicy="Local"),
                        eps("web", [ep("10.1.0.2", node="n2"), ep("10.1.0.3")])],
     {"internal_local": True, "cluster": ["10.1.0.3:8080"]}),
    ("scheduler-annotation", [svc("web", annotations={"ingressctl.io/scheduler": "wlc"}), eps("web", [])],
     {"scheduler": "wlc"}),
    ("scheduler-default", [svc("web"), eps("web", [])], {"scheduler": ""}),
    ("dedup-across-slices", [svc("web"), eps("web", [ep("10.1.0.2")]),
                             eps("web", [ep("10.1.0.2"), ep("10.1.0.5")], name="web-b")],
     {"cluster": ["10.1.0.2:8080", "10.1.0.5:8080"]}),
    ("port-matched-by-name", [
        svc("web", ports=[{"name": "http", "port": 80}, {"name": "metrics", "port": 9100}]),
        eps("web", [ep("10.1.0.2")], ports=[{"name": "metrics", "port": 9101},
                                           {"name": "http", "port": 8081}])],
     {"cluster": ["10.1.0.2:8081"]}),
]


def _value(table_entry: Any, attr: str) -> Any:
    if attr in ("cluster", "local", "external"):
        fn = {"cluster": "cluster_endpoints", "local": "local_endpoints",
              "external": "external_endpoints"}[attr]
        return [e.address for e in getattr(table_entry, fn)()]
    return getattr(table_entry, attr)


@pytest.mark.parametrize("case,objects,expected", CASES, ids=[c[0] for c in CASES])
def test_web_entry(case: str, objects: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    entry = table(*objects).get(WEB)
    assert entry is not None, case
    for attr, want in expected.items():
        assert _value(entry, attr) == want, attr


SKIPS = [
    ("headless", svc("web", clusterIP="None"), "headless"),
    ("external-name", svc("web", type="ExternalName", externalName="x.example", clusterIP=""),
     "ExternalName"),
    ("other-proxy", svc("web", labels={"service.kubernetes.io/service-proxy-name": "cilium"}),
     "cilium"),
    ("headless-label", svc("web", labels={"service.kubernetes.io/headless": ""}), "headless"),
    ("no-cluster-ip", svc("web", clusterIP=""), "no cluster IP"),
]


@pytest.mark.parametrize("case,raw,reason", SKIPS, ids=[s[0] for s in SKIPS])
def test_skipped(case: str, raw: dict[str, Any], reason: str) -> None:
    t = table(raw)
    assert t.get(WEB) is None
    assert len(t.skipped) == 1 and reason in t.skipped[0]


def test_our_own_proxy_name_is_programmed() -> None:
    t = table(svc("web", labels={"service.kubernetes.io/service-proxy-name": "ingressctl"}))
    assert t.get(WEB) is not None


def test_one_entry_per_port_and_protocol() -> None:
    t = table(svc("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]))
    assert sorted(str(k) for k in t.services) == ["default/dns:dns-tcp/tcp", "default/dns:dns/udp"]


def test_same_objects_same_table() -> None:
    objs = [svc("web"), eps("web", [ep("10.1.0.3"), ep("10.1.0.2")])]
    assert table(*objs) == table(*reversed(objs))


def test_local_flag_needs_a_node_name() -> None:
    t = table(svc("web"), eps("web", [ep("10.1.0.2", node="")]), node="")
    entry = t.get(WEB)
    assert entry is not None and not entry.endpoints[0].is_local
