"""Which sockets the userspace proxy opens for a ServiceTable (no sockets opened here)."""

from __future__ import annotations

import pytest

from ingressctl.proxy.backends.base import ProxyOptions
from ingressctl.proxy.backends.userspace import plan_listeners
from ingressctl.proxy.backends.userspace_backend import UserspaceBackend, nodeport_ips
from ingressctl.proxy.core.model import EndpointInfo, ServiceInfo, ServicePortKey, ServiceTable

LOCAL_EP = EndpointInfo("10.0.0.1", 80, is_local=True)
REMOTE_EP = EndpointInfo("10.0.0.2", 80)


def info(name: str, **kw: object) -> ServiceInfo:
    fields: dict[str, object] = {"type": "ClusterIP", "cluster_ips": ("127.96.0.5",), "port": 80,
                                 "protocol": "TCP", "endpoints": (LOCAL_EP, REMOTE_EP), **kw}
    fields["key"] = ServicePortKey("default", name, "http", str(fields["protocol"]))
    return ServiceInfo(**fields)  # type: ignore[arg-type]


def plan(*infos: ServiceInfo, nodeport: tuple[str, ...] = ("127.0.0.1",)) -> tuple[list[str], list[str]]:
    plans, problems = plan_listeners(ServiceTable(services={i.key: i for i in infos}), nodeport)
    lines = [f"{lk} {p.balancer[1]} {p.scheduler} {' '.join(b.ip for b in p.backends)}"
             for lk, p in sorted(plans.items(), key=lambda kv: str(kv[0]))]
    return lines, problems


@pytest.mark.parametrize("case, infos, expected", [
    ("cluster IP only", [info("a")], ["tcp 127.96.0.5:80 cluster rr 10.0.0.1 10.0.0.2"]),
    ("nodePort on each nodePort address, LB and external IPs",
     [info("a", node_port=30080, external_ips=("127.0.1.1",), load_balancer_ips=("127.0.2.1",))],
     ["tcp 127.0.0.1:30080 external rr 10.0.0.1 10.0.0.2", "tcp 127.0.1.1:80 external rr 10.0.0.1 10.0.0.2",
      "tcp 127.0.2.1:80 external rr 10.0.0.1 10.0.0.2", "tcp 127.96.0.5:80 cluster rr 10.0.0.1 10.0.0.2"]),
    ("externalTrafficPolicy Local: only local endpoints from outside",
     [info("a", node_port=30080, external_traffic_policy="Local")],
     ["tcp 127.0.0.1:30080 external rr 10.0.0.1", "tcp 127.96.0.5:80 cluster rr 10.0.0.1 10.0.0.2"]),
    ("scheduler annotation and UDP", [info("a", protocol="UDP", scheduler="sh:fallback")],
     ["udp 127.96.0.5:80 cluster sh:fallback 10.0.0.1 10.0.0.2"]),
])
def test_listeners(case: str, infos: list[ServiceInfo], expected: list[str]) -> None:
    lines, problems = plan(*infos)
    assert (lines, problems) == (expected, []), case


def test_problems_are_reported_and_the_rest_is_served() -> None:
    lines, problems = plan(info("a", scheduler="fastest"), info("b", protocol="SCTP"),
                           info("c", cluster_ips=("127.96.0.9",)), info("d", cluster_ips=("127.96.0.9",)))
    assert lines == ["tcp 127.96.0.9:80 cluster rr 10.0.0.1 10.0.0.2"]
    assert problems == [
        "default/a:http/tcp: unknown scheduler 'fastest': use one of rr, wrr, lc, wlc, sed, nq, sh, dh, mh",
        "default/b:http/sctp: SCTP is not supported in userspace mode",
        "default/d:http/tcp: tcp 127.96.0.9:80 is already used by default/c:http/tcp",
    ]


@pytest.mark.parametrize("cidrs, addresses, expected", [
    ((), ["10.1.2.3"], ("0.0.0.0",)),
    (("127.0.0.1/32",), ["127.0.0.1", "10.1.2.3"], ("127.0.0.1",)),
    (("10.0.0.0/8", "192.168.0.0/16"), ["127.0.0.1", "192.168.1.5", "10.1.2.3"], ("10.1.2.3", "192.168.1.5")),
    (("172.16.0.0/12",), ["10.1.2.3"], ()),
])
def test_nodeport_addresses(cidrs: tuple[str, ...], addresses: list[str], expected: tuple[str, ...]) -> None:
    assert nodeport_ips(cidrs, addresses) == expected


def test_dry_run_uses_the_default_scheduler_flag() -> None:
    table = ServiceTable(services={i.key: i for i in [info("a", scheduler="")]})
    out = UserspaceBackend(ProxyOptions(), scheduler="wlc").render(table)
    assert "tcp 127.96.0.5:80 -> default/a:http/tcp (cluster) wlc [10.0.0.1:80 10.0.0.2:80]" in out


def test_source_ranges_apply_to_load_balancer_addresses_only() -> None:
    a = info("a", node_port=30080, external_ips=("127.0.1.1",), load_balancer_ips=("127.0.2.1",),
             load_balancer_source_ranges=("192.0.2.0/24",))
    plans, _ = plan_listeners(ServiceTable(services={a.key: a}), ("127.0.0.1",))
    admits = {str(lk): (p.admits("192.0.2.7"), p.admits("198.51.100.1")) for lk, p in plans.items()}
    assert admits == {"tcp 127.96.0.5:80": (True, True), "tcp 127.0.1.1:80": (True, True),
                      "tcp 127.0.2.1:80": (True, False), "tcp 127.0.0.1:30080": (True, True)}
