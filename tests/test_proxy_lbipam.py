"""LoadBalancer IP pools: parsing and the pure allocation rules."""

from __future__ import annotations

from typing import Any

import pytest

from ingressctl.objects import Service, parse_object
from ingressctl.proxy.lb.ipam import PoolError, allocate, parse_pools, takes_part

POOLS = """
pools:
- name: public
  addresses: [192.0.2.254-192.0.3.1]     # crosses .255/.0: both skipped
  priority: 10
- name: internal
  addresses: [10.10.0.0/30]
  namespaces: [team-a]
- name: reserved
  addresses: [198.51.100.7-198.51.100.8]
  autoAssign: false
"""


def svc(name: str, ns: str = "default", age: int = 0, annotations: dict[str, str] | None = None,
        status: str = "", **spec: Any) -> Service:
    raw: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations or {},
                     "creationTimestamp": f"2024-01-01T00:00:{age:02d}Z"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerClass": "ingressctl.io/lb", **spec}}
    if status:
        raw["status"] = {"loadBalancer": {"ingress": [{"ip": status}]}}
    obj = parse_object(raw)
    assert isinstance(obj, Service)
    return obj


def ips(services: list[Service], pools: str = POOLS) -> dict[str, str]:
    result = allocate(parse_pools(pools), services)
    out = {k: a.ip for k, a in result.assignments.items()}
    out.update({k: f"! {reason}" for k, reason in result.problems})
    return out


def test_pool_order_by_priority_and_buggy_addresses_skipped() -> None:
    pools = parse_pools(POOLS)
    assert [p.name for p in pools] == ["public", "internal", "reserved"]
    assert [str(a) for a in pools[0].addresses()] == ["192.0.2.254", "192.0.3.1"]
    assert "192.0.2.255" not in pools[0] and "192.0.3.1" in pools[0]


@pytest.mark.parametrize("case, services, expected", [
    ("first free address in pool order, oldest Service first",
     [svc("b", age=2), svc("a", age=1)],
     {"default/a": "192.0.2.254", "default/b": "192.0.3.1"}),
    ("a full pool spills into the next auto-assign pool the namespace may use",
     [svc("a", "team-a", 1), svc("b", "team-a", 2), svc("c", "team-a", 3)],
     {"team-a/a": "192.0.2.254", "team-a/b": "192.0.3.1", "team-a/c": "10.10.0.1"}),
    ("exhausted pools are reported, not a crash",
     [svc("a", age=1), svc("b", age=2), svc("c", age=3)],
     {"default/a": "192.0.2.254", "default/b": "192.0.3.1",
      "default/c": "! LoadBalancer pool public exhausted: no free address"}),
    ("the pool annotation picks a pool, even a non-auto-assign one",
     [svc("a", annotations={"ingressctl.io/lb-pool": "reserved"})], {"default/a": "198.51.100.7"}),
    ("the OpenELB annotation works the same way",
     [svc("a", annotations={"eip.openelb.kubesphere.io/v1alpha2": "reserved"})], {"default/a": "198.51.100.7"}),
    ("an unknown pool is reported",
     [svc("a", annotations={"ingressctl.io/lb-pool": "nope"})],
     {"default/a": "! LoadBalancer pool 'nope' does not exist"}),
    ("a pool closed to the namespace is reported",
     [svc("a", annotations={"ingressctl.io/lb-pool": "internal"})],
     {"default/a": "! LoadBalancer pool 'internal' is not open to namespace default"}),
    ("spec.loadBalancerIP is honoured, also in a non-auto-assign pool",
     [svc("a", loadBalancerIP="198.51.100.8"), svc("b", age=1)],
     {"default/a": "198.51.100.8", "default/b": "192.0.2.254"}),
    ("spec.loadBalancerIP outside every pool is reported",
     [svc("a", loadBalancerIP="203.0.113.5")],
     {"default/a": "! spec.loadBalancerIP 203.0.113.5 is not in a pool this Service may use"}),
    ("spec.loadBalancerIP taken by an older Service is reported",
     [svc("a", age=1, loadBalancerIP="198.51.100.8"), svc("b", age=2, loadBalancerIP="198.51.100.8")],
     {"default/a": "198.51.100.8", "default/b": "! spec.loadBalancerIP 198.51.100.8 is already used by "
                                                 "Service default/a"}),
    ("another loadBalancerClass is left alone; ours is served",
     [svc("a", loadBalancerClass="example.com/cloud"), svc("b", loadBalancerClass="ingressctl.io/lb")],
     {"default/b": "192.0.2.254"}),
    ("non-LoadBalancer Services get nothing",
     [svc("a", type="NodePort"), svc("b", type="ClusterIP")], {}),
    ("a pool without namespaces serves every namespace",
     [svc("a", "team-b")], {"team-b/a": "192.0.2.254"}),
])
def test_allocation(case: str, services: list[Service], expected: dict[str, str]) -> None:
    assert ips(services) == expected, case


def test_addresses_in_status_are_kept_across_restarts() -> None:
    # a newer Service already holds the first address: it keeps it, the older one moves on
    services = [svc("old", age=1), svc("new", age=2, status="192.0.2.254")]
    assert ips(services) == {"default/new": "192.0.2.254", "default/old": "192.0.3.1"}


def test_status_address_no_longer_in_a_pool_is_replaced() -> None:
    assert ips([svc("a", status="203.0.113.9")]) == {"default/a": "192.0.2.254"}


def test_duplicate_status_claims_go_to_the_oldest() -> None:
    services = [svc("b", age=2, status="192.0.3.1"), svc("a", age=1, status="192.0.3.1")]
    assert ips(services) == {"default/a": "192.0.3.1", "default/b": "192.0.2.254"}


def test_release_on_delete_or_type_change_frees_the_address() -> None:
    first = ips([svc("a", age=1), svc("b", age=2)])
    assert first["default/a"] == "192.0.2.254"
    # a deleted: b keeps its own status address, c gets the freed one
    after = ips([svc("b", age=2, status=first["default/b"]), svc("c", age=3)])
    assert after == {"default/b": "192.0.3.1", "default/c": "192.0.2.254"}
    moved = ips([svc("a", age=1, type="NodePort", status="192.0.2.254"), svc("c", age=3)])
    assert moved == {"default/c": "192.0.2.254"}


@pytest.mark.parametrize("text, message", [
    ("pools: 3", "expected `pools:` with a list"),
    ("pools: [{addresses: [10.0.0.1]}]", "pools[0].name: is required"),
    ("pools: [{name: a}]", "pool a: addresses must be a non-empty list"),
    ("pools: [{name: a, addresses: [10.0.0.9-10.0.0.1]}]", "not an ascending range"),
    ("pools: [{name: a, addresses: [nonsense]}]", "'nonsense' is not an address range"),
    ("pools: [{name: a, addresses: [10.0.0.1], priority: high}]", "priority must be an integer"),
    ("pools: [{name: a, addresses: [10.0.0.1], autoassign: true}]", "unknown field 'autoassign'"),
    ("pools: [{name: a, addresses: [10.0.0.1]}, {name: a, addresses: [10.0.0.2]}]", "defined twice"),
    ("pools: [", "not YAML"),
])
def test_bad_pool_definitions(text: str, message: str) -> None:
    with pytest.raises(PoolError, match=message.replace("[", r"\[")):
        parse_pools(text, "pools.yaml")


def test_avoid_buggy_ips_can_be_turned_off_and_cidrs_work() -> None:
    pools = parse_pools("pools: [{name: p, addresses: [10.1.1.0/31], avoidBuggyIPs: false}]")
    assert ips([svc("a", age=1), svc("b", age=2)], "pools: [{name: p, addresses: [10.1.1.0/31], "
               "avoidBuggyIPs: false}]") == {"default/a": "10.1.1.0", "default/b": "10.1.1.1"}
    assert [str(a) for a in pools[0].addresses()] == ["10.1.1.0", "10.1.1.1"]


def test_no_pool_open_to_the_namespace_is_reported() -> None:
    only_team_a = "pools: [{name: internal, addresses: [10.10.0.0/30], namespaces: [team-a]}]"
    assert ips([svc("a", "team-b")], only_team_a) == {
        "team-b/a": "! no LoadBalancer pool assigns addresses to namespace team-b"}


@pytest.mark.parametrize("spec, annotations, claim_unclassed, assigned", [
    ({"loadBalancerClass": "ingressctl.io/lb"}, {}, False, True),  # our class: opted in
    ({"loadBalancerClass": None}, {"ingressctl.io/lb-pool": "public"}, False, True),  # names a pool: opted in
    ({"loadBalancerClass": None}, {}, False, False),  # a cloud's Service: left alone by default
    ({"loadBalancerClass": None}, {}, True, True),  # --lb-claim-unclassed (bare metal, no other LB controller)
    ({"loadBalancerClass": "example.com/cloud"}, {"ingressctl.io/lb-pool": "public"}, True, False),
])
def test_only_services_that_opt_in_take_part(spec: dict[str, Any], annotations: dict[str, str],
                                             claim_unclassed: bool, assigned: bool) -> None:
    s = svc("a", annotations=annotations, **spec)
    result = allocate(parse_pools(POOLS), [s], claim_unclassed)
    assert ("default/a" in result.assignments) == assigned
    assert takes_part(s, claim_unclassed) == assigned
