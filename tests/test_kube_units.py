"""Fast tests of the cluster-mode pieces that need no server: backoff, status addresses,
leader election steps on a fake clock, Event deduplication and rate limiting.

`FakeApi` keeps objects in a dict and answers like the API server does for the requests
these modules make (GET / POST / PUT with resourceVersion check -> 409 / PATCH).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ingressctl.ingress.model import Problem
from ingressctl.kube.events import EventRecorder
from ingressctl.kube.leader import LeaderElector
from ingressctl.kube.status import (
    desired_status,
    node_addresses,
    parse_addresses,
    service_addresses,
)
from ingressctl.objects import LoadBalancerIngress as LB
from ingressctl.sources.kube import Backoff, default_specs
from ingressctl.store import Store


def _error(status: int) -> ApiException:
    e = ApiException(status=status, reason="fake")
    e.body = json.dumps({"message": f"fake {status}"})
    return e


class FakeApi:
    host = "fake://api"

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.calls: list[tuple[str, str]] = []
        self.fail: int | None = None

    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                content_type: str | None = None, timeout: Any = None) -> dict[str, Any]:
        self.calls.append((method, path))
        if self.fail:
            raise _error(self.fail)
        if method == "POST":
            key = f"{path}/{body['metadata']['name']}"
            if key in self.objects:
                raise _error(409)
            return self._store(key, copy.deepcopy(body))
        if path not in self.objects:
            raise _error(404)
        current = self.objects[path]
        if method == "GET":
            return copy.deepcopy(current)
        if method == "PUT":
            want = body["metadata"].get("resourceVersion")
            if want and want != current["metadata"]["resourceVersion"]:
                raise _error(409)
            return self._store(path, copy.deepcopy(body))
        if method == "PATCH":
            return self._store(path, {**current, **body, "metadata": current["metadata"]})
        raise AssertionError(method)

    def _store(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        return copy.deepcopy(obj)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- backoff, specs -------------------------------------------------------------------------------

def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    b = Backoff(base=0.5, cap=8.0, rng=random.Random(1))
    delays = [b.next() for _ in range(10)]
    for n, d in enumerate(delays):
        ceiling = min(8.0, 0.5 * 2 ** n)
        assert ceiling / 2 <= d <= ceiling
    assert len(set(delays[5:])) > 1  # jitter: capped delays still differ
    b.reset()
    assert b.next() <= 0.5


def test_watch_specs_scope_namespace_tls_secrets_and_the_controller_namespaces_configmaps() -> None:
    specs = {s.kind: s for s in default_specs("team-a", "ingress/ingressctl")}
    assert set(specs) == {"IngressClass", "Ingress", "Service", "EndpointSlice", "Secret", "ConfigMap"}
    assert specs["IngressClass"].namespace == ""  # cluster-scoped
    assert specs["Ingress"].namespace == specs["Service"].namespace == "team-a"
    assert "type!=kubernetes.io/service-account-token" in specs["Secret"].field_selector
    assert "type=" not in specs["Secret"].field_selector  # TLS and Opaque (auth) Secrets are read
    # every ConfigMap of the controller's namespace: add-headers / proxy-set-headers name others
    assert (specs["ConfigMap"].namespace, specs["ConfigMap"].field_selector) == ("ingress", "")
    same = {s.kind: s for s in default_specs("", "ingress/ingressctl", configmaps=("ingress/tcp", ""))}
    assert same["ConfigMap"].namespace == "ingress"
    spread = {s.kind: s for s in default_specs("", "ingress/ingressctl", configmaps=("edge/tcp",))}
    assert spread["ConfigMap"].namespace == ""  # two namespaces: all of them


# -- status -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("192.0.2.1", (LB(ip="192.0.2.1"),)),
    ("lb.example.com, 192.0.2.1,", (LB(hostname="lb.example.com"), LB(ip="192.0.2.1"))),
    ("2001:db8::1,2001:db8::1", (LB(ip="2001:db8::1"),)),
    ("", ()),
])
def test_parse_addresses(text: str, expected: tuple[LB, ...]) -> None:
    assert set(parse_addresses(text)) == set(expected) and len(parse_addresses(text)) == len(expected)


def test_service_and_node_addresses() -> None:
    svc = {"spec": {"externalIPs": ["192.0.2.9"]}, "status": {"loadBalancer": {"ingress": [{"hostname": "h.example"}]}}}
    assert service_addresses(svc) == (LB(hostname="h.example"),)
    assert service_addresses({"spec": {"externalIPs": ["192.0.2.9"]}}) == (LB(ip="192.0.2.9"),)
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                                     {"type": "Hostname", "address": "n1"}]}}
    assert node_addresses(node) == (LB(ip="10.0.0.5"),)
    node["status"]["addresses"].append({"type": "ExternalIP", "address": "192.0.2.7"})
    assert node_addresses(node) == (LB(ip="192.0.2.7"),)


@pytest.mark.parametrize("current, ours, expected", [
    ((), True, (LB(ip="192.0.2.1"),)),
    ((LB(ip="192.0.2.99"),), True, (LB(ip="192.0.2.1"),)),  # ours: exactly our addresses
    ((LB(ip="192.0.2.1"), LB(ip="198.51.100.1")), False, (LB(ip="198.51.100.1"),)),  # left our class
    ((LB(ip="198.51.100.1"),), False, (LB(ip="198.51.100.1"),)),  # another controller's: untouched
])
def test_desired_status(current: tuple[LB, ...], ours: bool, expected: tuple[LB, ...]) -> None:
    published = {LB(ip="192.0.2.1"), LB(ip="192.0.2.2")}
    assert desired_status(current, ours, (LB(ip="192.0.2.1"),), published) == expected


# -- leader election ----------------------------------------------------------------------------------

def _elector(api: FakeApi, clock: Clock, who: str) -> LeaderElector:
    return LeaderElector(api, "ns", "lock", who, lease_duration=10, renew_deadline=6, retry_period=2,  # type: ignore[arg-type]
                         clock=clock)


def test_one_leader_then_takeover_after_expiry_on_our_own_clock() -> None:
    api, clock = FakeApi(), Clock()
    a, b = _elector(api, clock, "a"), _elector(api, clock, "b")
    assert a.step() and not b.step()
    clock.t += 5
    assert a.step() and not b.step()  # renewed: b saw the record change and restarts its timer
    clock.t += 9
    assert not b.step()  # 9 s since b last saw a change: still valid
    clock.t += 2  # a is silent for 11 s > lease duration
    assert b.step() and b.is_leader
    spec = api.objects["/apis/coordination.k8s.io/v1/namespaces/ns/leases/lock"]["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert not a.step() and not a.is_leader  # a sees b holding it and steps down


def test_conflict_is_reread_and_release_hands_over_at_once() -> None:
    api, clock = FakeApi(), Clock()
    a, b = _elector(api, clock, "a"), _elector(api, clock, "b")
    assert a.step()
    path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lock"
    original = api.request
    stale = {"n": 0}

    def racing(method: str, p: str, *args: Any, **kw: Any) -> dict[str, Any]:
        if method == "PUT" and stale["n"] == 0:  # someone wrote between our GET and PUT
            stale["n"] += 1
            api._store(p, api.objects[p])
        return original(method, p, *args, **kw)

    api.request = racing  # type: ignore[method-assign]
    assert a.step() is True  # within renew deadline: still leader after one conflict
    assert ("PUT", path) in api.calls and stale["n"] == 1
    assert a.step()  # re-read, renewed
    api.request = original  # type: ignore[method-assign]
    a.release()
    assert b.step() and b.is_leader  # no waiting for the lease duration


def test_leader_steps_down_when_it_cannot_renew() -> None:
    api, clock = FakeApi(), Clock()
    changes: list[bool] = []
    a = _elector(api, clock, "a")
    a.on_change = changes.append
    assert a.step()
    api.fail = 500
    clock.t += 2
    assert a.step()  # one failed renew within the deadline
    clock.t += 5
    assert not a.step() and changes == [True, False]


# -- events ------------------------------------------------------------------------------------------

def _problem(name: str = "broken", reason: str = "ServiceNotFound") -> Problem:
    return Problem("Ingress", "default", name, reason, f"Service default/{name} not found")


def test_events_deduplicated_counted_and_rate_limited() -> None:
    api, clock = FakeApi(), Clock()
    rec = EventRecorder(api, Store(), lambda: True, instance="r1", burst=2, refill_seconds=100,  # type: ignore[arg-type]
                        repeat_seconds=10, clock=clock)
    rec.report((_problem(),))
    rec.report((_problem(),))  # same problem again at once: nothing written
    assert [m for m, _ in api.calls] == ["POST"]
    clock.t += 11
    rec.report((_problem(),))  # repeat after the interval: the same Event counted again
    assert [m for m, _ in api.calls] == ["POST", "PATCH"]
    (event,) = api.objects.values()
    assert event["count"] == 2 and event["involvedObject"]["name"] == "broken" and event["type"] == "Warning"
    clock.t += 11
    rec.report((_problem(),))  # bucket of 2 is empty now: dropped, not sent
    assert len(api.calls) == 2 and rec.dropped == 1


def test_events_only_from_the_leader_and_forgotten_when_fixed() -> None:
    api, clock = FakeApi(), Clock()
    leader = {"now": False}
    rec = EventRecorder(api, Store(), lambda: leader["now"], repeat_seconds=10, clock=clock)  # type: ignore[arg-type]
    rec.report((_problem(),))
    assert api.calls == []
    leader["now"] = True
    rec.report((_problem(),))
    rec.report(())  # fixed
    rec.report((_problem(),))  # broken again: a new Event
    assert [m for m, _ in api.calls] == ["POST", "POST"]
