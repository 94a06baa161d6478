"""Stale UDP conntrack entries: which deletions a change calls for, the sync loop running them
after successful syncs only, and the `conntrack` runner (a stand-in script, a missing binary)."""

from __future__ import annotations

import logging
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ingressctl.objects import parse_object
from ingressctl.proxy.backends.nftables import NftablesBackend
from ingressctl.proxy.core.model import ServicePortKey
from ingressctl.proxy.core.stale import StaleFlow, stale_flows
from ingressctl.proxy.core.tracker import ServiceTracker
from ingressctl.proxy.sync import SyncLoop
from ingressctl.proxy.system.conntrack import ConntrackCleaner
from ingressctl.store import Store
from tests.test_proxy_build import ep, eps, svc, table
from tests.test_proxy_sync import Recorder

A, B = "10.1.0.2", "10.1.0.3"
DNS = [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]
DNS_NP = [{**DNS[0], "nodePort": 30053}]


def udp(endpoints: list[dict[str, Any]], **spec: Any) -> list[dict[str, Any]]:
    protocol = spec.pop("protocol", "UDP")
    ports = [{**p, "protocol": protocol} for p in spec.pop("ports", DNS)]
    spec.setdefault("clusterIP", "10.96.0.15")
    return [svc("dns", ports=ports, **spec),
            eps("dns", endpoints, ports=[{"name": "dns", "port": 5353, "protocol": protocol}])]


LB = {"type": "LoadBalancer", "ports": DNS_NP, "externalIPs": ["192.0.2.10"],
      "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}}

# (case, objects before, objects after, expected flows as "proto dst:port -> endpoint")
CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[str]]] = [
    ("unchanged", udp([ep(A), ep(B)]), udp([ep(A), ep(B)]), []),
    ("endpoint-removed", udp([ep(A), ep(B)]), udp([ep(B)]), [f"udp 10.96.0.15:53 -> {A}"]),
    ("endpoint-added", udp([ep(A)]), udp([ep(A), ep(B)]), []),
    ("last-endpoint-removed", udp([ep(A)]), udp([]), [f"udp 10.96.0.15:53 -> {A}"]),
    ("first-endpoint-clears-the-frontend", udp([]), udp([ep(A)]), ["udp 10.96.0.15:53 -> any"]),
    ("new-service-with-endpoints", [], udp([ep(A)]), ["udp 10.96.0.15:53 -> any"]),
    ("new-service-without-endpoints", [], udp([]), []),
    ("service-deleted", udp([ep(A), ep(B)]), [],
     [f"udp 10.96.0.15:53 -> {A}", f"udp 10.96.0.15:53 -> {B}"]),
    ("tcp-is-left-alone", udp([ep(A), ep(B)], protocol="TCP"), udp([ep(B)], protocol="TCP"), []),
    ("sctp-is-left-alone", udp([ep(A)], protocol="SCTP"), [], []),
    ("not-serving-any-more", udp([ep(A), ep(B)]), udp([ep(A, ready=False, serving=False), ep(B)]),
     [f"udp 10.96.0.15:53 -> {A}"]),
    ("terminating-but-serving-keeps-its-flows", udp([ep(A), ep(B)]),
     udp([ep(A, ready=False, serving=True, terminating=True), ep(B)]), []),
    ("not-ready-endpoint-removed", udp([ep(A, ready=False, serving=False), ep(B)]), udp([ep(B)]), []),
    ("nodeport-endpoint-removed", udp([ep(A), ep(B)], type="NodePort", ports=DNS_NP),
     udp([ep(B)], type="NodePort", ports=DNS_NP),
     [f"udp *:30053 -> {A}", f"udp 10.96.0.15:53 -> {A}"]),
    ("nodeport-removed", udp([ep(A)], type="NodePort", ports=DNS_NP), udp([ep(A)]),
     [f"udp *:30053 -> {A}"]),
    ("nodeport-added", udp([ep(A)]), udp([ep(A)], type="NodePort", ports=DNS_NP), ["udp *:30053 -> any"]),
    ("external-and-lb-ips", udp([ep(A), ep(B)], **LB), udp([ep(B)], **LB),
     [f"udp *:30053 -> {A}", f"udp 10.96.0.15:53 -> {A}", f"udp 192.0.2.10:53 -> {A}",
      f"udp 203.0.113.10:53 -> {A}"]),
    ("external-ip-removed", udp([ep(A)], externalIPs=["192.0.2.10"]), udp([ep(A)]),
     [f"udp 192.0.2.10:53 -> {A}"]),
    ("cluster-ip-changed", udp([ep(A)]), udp([ep(A)], clusterIP="10.96.0.16"),
     [f"udp 10.96.0.15:53 -> {A}", "udp 10.96.0.16:53 -> any"]),
    ("port-changed", udp([ep(A)]), udp([ep(A)], ports=[{**DNS[0], "port": 54}]),
     [f"udp 10.96.0.15:53 -> {A}", "udp 10.96.0.15:54 -> any"]),
    ("traffic-policy-does-not-cut-flows", udp([ep(A), ep(B, node="n2")], type="NodePort", ports=DNS_NP),
     udp([ep(A), ep(B, node="n2")], type="NodePort", ports=DNS_NP, externalTrafficPolicy="Local",
         internalTrafficPolicy="Local"), []),
]


@pytest.mark.parametrize("before,after,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_stale_flows(before: list[dict[str, Any]], after: list[dict[str, Any]], expected: list[str]) -> None:
    flows = stale_flows(table(*before), table(*after))
    assert sorted(str(f) for f in flows) == sorted(expected)


def test_first_sync_deletes_nothing() -> None:
    assert stale_flows(None, table(*udp([ep(A)]))) == []


def test_changed_keys_limit_the_comparison() -> None:
    old, new = table(*udp([ep(A), ep(B)])), table(*udp([ep(B)]))
    assert stale_flows(old, new, changed=frozenset()) == []
    key = ServicePortKey("default", "dns", "dns", "UDP")
    assert [str(f) for f in stale_flows(old, new, changed={key})] == [f"udp 10.96.0.15:53 -> {A}"]


@pytest.mark.parametrize("flow,argv", [
    (StaleFlow(53, "10.96.0.15", A),
     "-D -f ipv4 -p udp --orig-dst 10.96.0.15 --orig-port-dst 53 --reply-src 10.1.0.2"),
    (StaleFlow(30053, "", A), "-D -f ipv4 -p udp --orig-port-dst 30053 --reply-src 10.1.0.2"),
    (StaleFlow(53, "10.96.0.15"), "-D -f ipv4 -p udp --orig-dst 10.96.0.15 --orig-port-dst 53"),
    (StaleFlow(53, "fd00::a", "fd01::2"),
     "-D -f ipv6 -p udp --orig-dst fd00::a --orig-port-dst 53 --reply-src fd01::2"),
], ids=["endpoint", "node-port", "whole-frontend", "ipv6"])
def test_flow_argv(flow: StaleFlow, argv: str) -> None:
    assert " ".join(flow.argv()) == argv


class Cleaner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = False

    def clean(self, flows: Sequence[StaleFlow]) -> int:
        self.calls.append([str(f) for f in flows])
        if self.fail:
            raise RuntimeError("conntrack exploded")
        return len(flows)


def _loop() -> tuple[SyncLoop, Store, Recorder, Cleaner]:
    rec, store, cleaner = Recorder(), Store(), Cleaner()
    loop = SyncLoop(NftablesBackend(runner=rec), store.snapshot, ServiceTracker("n1"), cleaner=cleaner)
    return loop, store, rec, cleaner


def _load(store: Store, raws: list[dict[str, Any]]) -> None:
    store.replace(None, [parse_object(r) for r in raws])


def test_loop_cleans_after_successful_syncs_against_the_last_applied_table() -> None:
    loop, store, rec, cleaner = _loop()
    _load(store, udp([ep(A), ep(B)]))
    loop.sync_once(full=True)
    assert cleaner.calls == []  # first sync: nothing to compare with
    _load(store, udp([ep(B)]))
    rec.fail = True
    with pytest.raises(Exception, match="refused"):
        loop.sync_once(full=False)
    assert cleaner.calls == []  # the rules still send traffic to A: its flows are not stale yet
    rec.fail = False
    loop.sync_once(full=True)
    assert cleaner.calls == [[f"udp 10.96.0.15:53 -> {A}"]]
    assert loop.metrics.registry.get_sample_value("ingressctl_proxy_conntrack_entries_deleted_total") == 1
    _load(store, udp([ep(B)], clusterIP="10.96.0.16"))
    loop.sync_once(full=False)
    assert cleaner.calls[-1] == [f"udp 10.96.0.15:53 -> {B}", "udp 10.96.0.16:53 -> any"]


def test_loop_survives_a_failing_cleaner() -> None:
    loop, store, rec, cleaner = _loop()
    _load(store, udp([ep(A), ep(B)]))
    loop.sync_once(full=True)
    cleaner.fail = True
    _load(store, udp([ep(B)]))
    result = loop.sync_once(full=False)
    assert result is not None and loop.healthy()[0] and len(cleaner.calls) == 1


FAKE_CONNTRACK = """#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  *10.1.0.2*) echo "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted." >&2; exit 0;;
  *10.1.0.3*) echo "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted." >&2; exit 1;;
  *) echo "conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters" >&2; exit 1;;
esac
"""


def test_cleaner_runs_one_deletion_per_flow_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "calls"
    script = tmp_path / "conntrack"
    script.write_text(FAKE_CONNTRACK.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    cleaner = ConntrackCleaner(binary=str(script))
    flows = [StaleFlow(53, "10.96.0.15", A), StaleFlow(53, "10.96.0.15", B), StaleFlow(53, "10.96.0.15")]
    with caplog.at_level(logging.WARNING):
        assert cleaner.clean(flows) == 3
    assert log.read_text().splitlines() == [" ".join(f.argv()) for f in flows]
    assert (cleaner.deleted, cleaner.errors) == (3, 1)  # "0 deleted" (exit 1) is no error
    assert [r.message for r in caplog.records] == [
        "conntrack cleanup of udp 10.96.0.15:53 -> any failed (exit 1): conntrack v1.4.7 "
        "(conntrack-tools): Operation failed: invalid parameters"]


def test_missing_conntrack_warns_once_and_deletes_nothing(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    cleaner = ConntrackCleaner(binary=str(tmp_path / "no-such-conntrack"))
    with caplog.at_level(logging.WARNING):
        assert cleaner.clean([StaleFlow(53, "10.96.0.15", A)]) == 0
        assert cleaner.clean([StaleFlow(53, "10.96.0.15", B)]) == 0
    assert len(caplog.records) == 1 and "is not installed" in caplog.records[0].message
    assert not cleaner.enabled
