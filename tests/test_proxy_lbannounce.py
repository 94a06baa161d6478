"""LoadBalancer addresses at work, with recorders instead of `ip` and the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingressctl.objects import Service
from ingressctl.proxy.core.build import build_table
from ingressctl.proxy.lb.announce import FileLockLeader, L2Announcer, LoadBalancerIPs
from ingressctl.store import Snapshot

from .test_proxy_lbipam import svc

POOLS = "pools: [{name: p, addresses: [192.0.2.10-192.0.2.12]}]"


class Recorder:
    def __init__(self) -> None:
        self.commands: list[str] = []
        self.garps: list[str] = []

    def run(self, argv: list[str]) -> None:
        self.commands.append(" ".join(argv[2:4]))

    def garp(self, interface: str, ip: str) -> None:
        self.garps.append(f"{interface} {ip}")


class Leader:
    def __init__(self) -> None:
        self.leading = True
        self.released = False

    def step(self) -> bool:
        return self.leading

    def release(self) -> None:
        self.released = True


@pytest.fixture
def pools(tmp_path: Path) -> str:
    path = tmp_path / "pools.yaml"
    path.write_text(POOLS)
    return str(path)


def test_local_mode_puts_addresses_in_status_and_reuses_objects(pools: str) -> None:
    lb = LoadBalancerIPs(pools, local_mode=True)
    snap = Snapshot.of([svc("a", age=1, clusterIP="10.96.0.5"), svc("b", age=2), svc("c", type="NodePort")])
    out = lb.snapshot(snap)
    assert out.services["default/a"].status_ingress[0].ip == "192.0.2.10"
    assert out.services["default/b"].status_ingress[0].ip == "192.0.2.11"
    assert out.services["default/c"] is snap.services["default/c"]
    again = lb.snapshot(snap)
    assert again.services["default/a"] is out.services["default/a"]  # tracker sees no change
    table = build_table(out)
    assert [i.load_balancer_ips for i in table.by_service("default", "a")] == [("192.0.2.10",)]


def test_bad_pool_file_keeps_the_last_allocation(tmp_path: Path, pools: str) -> None:
    lb = LoadBalancerIPs(pools, local_mode=True)
    snap = Snapshot.of([svc("a")])
    lb.snapshot(snap)
    Path(pools).write_text("pools: [")
    assert lb.snapshot(snap).services["default/a"].status_ingress[0].ip == "192.0.2.10"


def test_leader_announces_and_withdraws(pools: str) -> None:
    rec, leader = Recorder(), Leader()
    lb = LoadBalancerIPs(pools, local_mode=True, leadership=leader,
                         announcer=L2Announcer("eth0", rec.run, rec.garp))
    lb.snapshot(Snapshot.of([svc("a", age=1), svc("b", age=2)]))
    lb.step()
    assert rec.commands == ["replace 192.0.2.10/32", "replace 192.0.2.11/32"]
    assert rec.garps == ["eth0 192.0.2.10", "eth0 192.0.2.11"]
    lb.snapshot(Snapshot.of([svc("b", age=2, status="192.0.2.11")]))  # a deleted: released
    lb.step()
    assert rec.commands[-1] == "del 192.0.2.10/32"
    leader.leading = False
    lb.step()
    assert rec.commands[-1] == "del 192.0.2.11/32" and lb.announcer and lb.announcer.held == set()
    lb.stop()
    assert leader.released


def test_cluster_mode_writes_differing_statuses_and_reports_problems(pools: str) -> None:
    writes: list[tuple[str, str]] = []
    reported: list[list[tuple[str, str]]] = []

    def write(s: Service, ip: str) -> None:
        writes.append((s.meta.key, ip))
    lb = LoadBalancerIPs(pools, local_mode=False, leadership=Leader(), write_status=write,
                         report=reported.append)
    services = [svc("a", age=1, status="192.0.2.10"), svc("b", age=2), svc("c", age=3),
                svc("d", age=4, annotations={"ingressctl.io/lb-pool": "gone"})]
    out = lb.snapshot(Snapshot.of(services))
    assert out.services["default/b"].status_ingress == ()  # cluster mode: the API brings it back
    lb.step()
    assert writes == [("default/b", "192.0.2.11"), ("default/c", "192.0.2.12")]
    assert reported[-1] == [("default/d", "LoadBalancer pool 'gone' does not exist")]


def test_non_leader_writes_nothing(pools: str) -> None:
    writes: list[tuple[str, str]] = []
    leader = Leader()
    leader.leading = False
    lb = LoadBalancerIPs(pools, local_mode=False, leadership=leader,
                         write_status=lambda s, ip: writes.append((s.meta.key, ip)))
    lb.snapshot(Snapshot.of([svc("a")]))
    lb.step()
    assert writes == []


def test_file_lock_leadership_passes_on_release(tmp_path: Path) -> None:
    lock = str(tmp_path / "lock")
    first, second = FileLockLeader(lock), FileLockLeader(lock)
    assert first.step() and not second.step()
    first.release()
    assert second.step() and not first.step()
    second.release()
