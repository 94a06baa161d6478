"""Change tracking, partial vs full syncs, and the sync loop, with a recording runner."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from ingressctl.objects import parse_object
from ingressctl.proxy.backends.base import ApplyError, FragmentBackend, ProxyOptions
from ingressctl.proxy.backends.iptables import IptablesBackend
from ingressctl.proxy.backends.nftables import NftablesBackend
from ingressctl.proxy.core.model import ServicePortKey
from ingressctl.proxy.core.tracker import ServiceTracker
from ingressctl.proxy.sync import SyncLoop
from ingressctl.store import Store
from tests.test_proxy_build import ep, eps, svc


class Recorder:
    """Stands in for iptables-restore / nft: records every call, can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str]] = []
        self.fail = False

    def __call__(self, argv: Sequence[str], stdin: str = "") -> str:
        self.calls.append((list(argv), stdin))
        if self.fail:
            raise ApplyError("refused")
        if argv[0] == "iptables" and "-C" in argv:
            raise ApplyError("no such rule")  # so ensure_jumps inserts
        return ""

    def texts(self) -> list[str]:
        return [stdin for argv, stdin in self.calls if argv[0] in ("iptables-restore", "nft")]


def web(n: int, **spec: Any) -> list[dict[str, Any]]:
    return [svc(f"web{n}", clusterIP=f"10.96.0.{n}", **spec),
            eps(f"web{n}", [ep(f"10.1.{n}.2"), ep(f"10.1.{n}.3")])]


def key(n: int) -> ServicePortKey:
    return ServicePortKey("default", f"web{n}", "http", "TCP")


def load(store: Store, *raws: dict[str, Any]) -> None:
    store.replace(None, [parse_object(r) for r in raws])


def test_tracker_reports_only_what_changed() -> None:
    store, tracker = Store(), ServiceTracker("n1")
    load(store, *web(1), *web(2))
    _, changed = tracker.update(store.snapshot())
    assert changed == {key(1), key(2)}
    _, changed = tracker.update(store.snapshot())
    assert changed == set() and tracker.rebuilt == 0
    load(store, *web(1), web(2)[0], eps("web2", [ep("10.1.2.2")]))
    table, changed = tracker.update(store.snapshot())
    assert changed == {key(2)} and tracker.rebuilt == 1
    assert [e.ip for e in table.services[key(2)].endpoints] == ["10.1.2.2"]


def test_tracker_drops_no_op_updates() -> None:
    store, tracker = Store(), ServiceTracker("n1")
    load(store, *web(1))
    tracker.update(store.snapshot())
    load(store, svc("web1", clusterIP="10.96.0.1", labels={"team": "a"}), web(1)[1])
    _, changed = tracker.update(store.snapshot())
    assert tracker.rebuilt == 1 and changed == set()


def test_tracker_reports_removed_services() -> None:
    store, tracker = Store(), ServiceTracker("n1")
    load(store, *web(1), *web(2))
    tracker.update(store.snapshot())
    load(store, *web(1))
    table, changed = tracker.update(store.snapshot())
    assert changed == {key(2)} and key(2) not in table.services


BACKENDS = [IptablesBackend, NftablesBackend]


def _synced(cls: type[FragmentBackend], *raws: dict[str, Any]) -> tuple[FragmentBackend, Recorder,
                                                                          Store, ServiceTracker]:
    rec, store, tracker = Recorder(), Store(), ServiceTracker("n1")
    backend = cls(ProxyOptions(cluster_cidr="10.1.0.0/16"), runner=rec)
    load(store, *raws)
    table, _ = tracker.update(store.snapshot())
    assert backend.sync(table, None).full
    return backend, rec, store, tracker


@pytest.mark.parametrize("cls", BACKENDS)
def test_partial_sync_writes_only_the_changed_service(cls: type[FragmentBackend]) -> None:
    backend, rec, store, tracker = _synced(cls, *web(1), *web(2), *web(3))
    full_text = rec.texts()[-1]
    load(store, *web(1), web(2)[0], eps("web2", [ep("10.1.2.2"), ep("10.1.2.9")]), *web(3))
    table, changed = tracker.update(store.snapshot())
    result = backend.sync(table, changed)
    text = rec.texts()[-1]
    assert not result.full and result.services_changed == 1
    assert "10.1.2.9" in text  # the new endpoint is written
    assert [x for x in text.splitlines() if x.startswith(("-X", "delete"))]  # the old one goes
    for other in (r"10\.1\.1\.2\b", r"10\.1\.3\.2\b", r"10\.96\.0\.1\b", r"10\.96\.0\.3\b"):
        assert re.search(other, full_text) and not re.search(other, text), other
    assert len(text) < len(full_text) / 2


@pytest.mark.parametrize("cls", BACKENDS)
def test_removed_service_chains_are_deleted(cls: type[FragmentBackend]) -> None:
    sticky = {"sessionAffinity": "ClientIP"}  # chains of its own in both backends
    backend, rec, store, tracker = _synced(cls, *web(1, **sticky), *web(2, **sticky))
    owned = set(backend.fragment(tracker.table.services[key(2)]).chains)
    assert owned
    load(store, *web(1, **sticky))
    table, changed = tracker.update(store.snapshot())
    backend.sync(table, changed)
    text = rec.texts()[-1]
    deletes = [line for line in text.splitlines() if line.startswith(("-X", "delete chain"))]
    assert len(deletes) == len(owned)  # every chain web2 owned, nothing of web1
    assert "10.1.1.2" not in text


@pytest.mark.parametrize("cls", BACKENDS)
def test_failed_apply_forces_a_full_sync(cls: type[FragmentBackend]) -> None:
    backend, rec, store, tracker = _synced(cls, *web(1), *web(2))
    load(store, *web(1), web(2)[0], eps("web2", [ep("10.1.2.7")]))
    table, changed = tracker.update(store.snapshot())
    rec.fail = True
    with pytest.raises(ApplyError):
        backend.sync(table, changed)
    rec.fail = False
    result = backend.sync(table, frozenset())
    text = rec.texts()[-1]
    assert result.full and "10.1.1.2" in text
    # ... rebuilt from scratch: the nft table recreated, the iptables jumps checked in
    assert ("delete table ip ingressctl" if cls is NftablesBackend else "-I PREROUTING 1") in text


def test_iptables_dispatch_rules_are_inserted_and_deleted_not_rewritten() -> None:
    backend, rec, store, tracker = _synced(IptablesBackend, *web(1))
    load(store, *web(1), *web(2))
    table, changed = tracker.update(store.snapshot())
    backend.sync(table, changed)
    text = rec.texts()[-1]
    assert ":ICP-SERVICES" not in text  # the dispatch chain is not flushed
    assert [x for x in text.splitlines() if x.startswith("-I ICP-SERVICES 1 -d 10.96.0.2/32")]


def test_nft_plain_service_is_map_elements_only() -> None:
    backend, rec, store, tracker = _synced(NftablesBackend, *web(1), *web(2))
    assert not backend.fragment(tracker.table.services[key(2)]).chains
    load(store, *web(1))
    table, changed = tracker.update(store.snapshot())
    backend.sync(table, changed)
    lines = rec.texts()[-1].splitlines()
    assert "delete element ip ingressctl service-ips { 10.96.0.2 . tcp . 80 }" in lines
    assert ("delete element ip ingressctl endpoints-2 { 10.96.0.2 . tcp . 80 . 0, 10.96.0.2 . tcp . 80 . 1 }"
            in lines)
    assert not [x for x in lines if "chain" in x or "10.96.0.1 " in x]


def test_nft_partial_moves_map_elements() -> None:
    backend, rec, store, tracker = _synced(NftablesBackend, *web(1))
    load(store, web(1)[0], eps("web1", []))
    table, changed = tracker.update(store.snapshot())
    backend.sync(table, changed)
    lines = rec.texts()[-1].splitlines()
    assert "delete element ip ingressctl service-ips { 10.96.0.1 . tcp . 80 }" in lines
    assert "add element ip ingressctl no-endpoint-services { 10.96.0.1 . tcp . 80 : goto reject-chain }" in lines


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _loop(min_period: float = 1.0, period: float = 30.0) -> tuple[SyncLoop, Store, Recorder, FakeClock]:
    rec, store, clock = Recorder(), Store(), FakeClock()
    backend = NftablesBackend(runner=rec)
    loop = SyncLoop(backend, store.snapshot, ServiceTracker("n1"), min_period, period, clock=clock)
    return loop, store, rec, clock


def test_loop_first_sync_full_then_partial_then_periodic_full() -> None:
    loop, store, rec, clock = _loop()
    load(store, *web(1))
    first = loop.sync_once(full=clock() >= loop._next_full)
    assert first is not None and first.full
    assert loop.sync_once(full=False) is None  # nothing changed: no transaction at all
    load(store, *web(1), *web(2))
    second = loop.sync_once(full=clock() >= loop._next_full)
    assert second is not None and not second.full
    clock.now += 31
    third = loop.sync_once(full=clock() >= loop._next_full)
    assert third is not None and third.full
    assert len(rec.texts()) == 3


def test_loop_step_waits_out_min_sync_period() -> None:
    loop, store, rec, clock = _loop(min_period=5.0)
    stop = threading.Event()
    waits: list[float] = []
    stop.wait = lambda timeout=None: (waits.append(timeout or 0.0), False)[1]  # type: ignore[method-assign]
    load(store, *web(1))
    loop.notify()
    loop.step(stop)
    load(store, *web(1), *web(2))
    loop.notify()
    clock.now += 1
    loop.step(stop)
    assert waits == [pytest.approx(4.0)]
    assert len(rec.texts()) == 2


def test_health_follows_successful_syncs() -> None:
    loop, store, rec, clock = _loop(period=10.0)
    assert not loop.healthy()[0]
    load(store, *web(1))
    loop.sync_once(full=True)
    assert loop.healthy()[0]
    rec.fail = True
    load(store, *web(2))
    with pytest.raises(ApplyError):
        loop.sync_once(full=False)
    clock.now += 15
    assert loop.healthy()[0]  # within 2 x sync period
    clock.now += 10
    ok, why = loop.healthy()
    assert not ok and "refused" in why
    text = loop.metrics.registry.get_sample_value("ingressctl_proxy_syncs_total",
                                                  {"kind": "partial", "result": "error"})
    assert text == 1.0


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProxyOptions().cluster_cidr = "x"  # type: ignore[misc]


def test_shared_entries_live_until_their_last_holder_goes() -> None:
    """Two Services with the same endpoint share its hairpin element (nftables)."""
    shared = [svc("a", clusterIP="10.96.0.1"), eps("a", [ep("10.1.0.2")]),
              svc("b", clusterIP="10.96.0.2"), eps("b", [ep("10.1.0.2")])]
    backend, rec, store, tracker = _synced(NftablesBackend, *shared)
    assert rec.texts()[-1].count("10.1.0.2 . 10.1.0.2") == 1
    load(store, *shared[:2])
    table, changed = tracker.update(store.snapshot())
    backend.sync(table, changed)
    assert "hairpin" not in rec.texts()[-1]
    load(store)
    table, changed = tracker.update(store.snapshot())
    backend.sync(table, changed)
    assert "delete element ip ingressctl hairpin { 10.1.0.2 . 10.1.0.2 }" in rec.texts()[-1]


def test_iptables_first_sync_adds_only_missing_jumps() -> None:
    """A restart finds its jumps (and a stale chain) in iptables-save: no duplicate jumps."""
    saved = ("*nat\n:PREROUTING ACCEPT [0:0]\n:ICP-SVC-STALE - [0:0]\n-A PREROUTING -j ICP-SERVICES\n"
             "COMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    rec = Recorder()

    def runner(argv: Sequence[str], stdin: str = "") -> str:
        return saved if argv[0] == "iptables-save" else rec(argv, stdin)

    store, tracker = Store(), ServiceTracker("n1")
    backend = IptablesBackend(ProxyOptions(), runner=runner)
    load(store, *web(1))
    backend.sync(tracker.update(store.snapshot())[0], None)
    text = rec.texts()[-1]
    assert "-I PREROUTING" not in text and "-I OUTPUT 1 -j ICP-SERVICES" in text
    assert "-X ICP-SVC-STALE" in text
    assert not [argv for argv, _ in rec.calls if argv[0] == "iptables"]  # no -C/-I round trips
    backend.sync(tracker.table, None)  # a periodic full resync checks the jumps again
    assert [argv for argv, _ in rec.calls if argv[0] == "iptables" and "-C" in argv]
