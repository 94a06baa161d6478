"""A build with a BuildMemo returns exactly what a build without one returns.

The memo reuses a host's server while everything it was made from is the same; a dependency
it does not track would serve a stale server after some change. So every golden case (all
the annotations, Secrets, ConfigMaps, canaries, default backends, aliases) is built through
a sequence of changes -- each object left out in turn, then back -- with one memo, and each
result is compared with a build from scratch. Then the dependencies that cross hosts, one
by one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ingressctl.controller import settings_from
from ingressctl.ingress.build import BuildMemo, BuildOptions, BuildResult, build
from ingressctl.ingress.classes import ClassFilter
from ingressctl.objects import KubeObject
from ingressctl.sources.files import ManifestDirectory
from ingressctl.store import Snapshot, Store

from .factory import NOW, endpoint_slice, ingress, ingress_class, path, service, tls_secret

CASES = Path(__file__).parent / "cases"


def case_objects(case: str) -> list[KubeObject]:
    store = Store()
    ManifestDirectory(CASES / case, store).load()
    snap = store.snapshot()
    return [*snap.ingresses.values(), *snap.classes.values(), *snap.services.values(),
            *(s for slices in snap.slices_by_service.values() for s in slices), *snap.secrets.values(),
            *snap.configmaps.values()]


def options(snap: Snapshot, balancer: bool, memo: BuildMemo | None = None) -> BuildOptions:
    settings, _ = settings_from(snap, "ingressctl/config")
    return BuildOptions(classes=ClassFilter(watch_without_class=True), settings=settings, now=NOW,
                        balancer=balancer, memo=memo)


def same_as_fresh(objects: list[KubeObject], memo: BuildMemo, balancer: bool = True) -> BuildResult:
    snap = Snapshot.of(objects)
    with_memo = build(snap, options(snap, balancer, memo))
    fresh = build(snap, options(snap, balancer))
    assert with_memo.problems == fresh.problems
    assert with_memo.statuses == fresh.statuses
    for a, b in zip(with_memo.model.servers, fresh.model.servers, strict=True):
        assert a == b, a.host
    assert with_memo.model == fresh.model
    return with_memo


def out_and_back(case: str, balancer: bool) -> int:
    """Each object left out, then back, all with one memo; how many servers were reused."""
    objects = case_objects(case)
    memo = BuildMemo()
    same_as_fresh(objects, memo, balancer)
    reused = 0
    for i in range(len(objects)):
        same_as_fresh(objects[:i] + objects[i + 1:], memo, balancer)
        reused += memo.reused
        same_as_fresh(objects, memo, balancer)
        reused += memo.reused
    return reused


CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "input.yaml").exists())


@pytest.mark.parametrize("balancer", [True, False])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_each_object_out_and_back(case: str, balancer: bool) -> None:
    out_and_back(case, balancer)


def test_the_cases_exercise_the_memo() -> None:
    """Servers were reused across the cases, so the comparisons above compared something (a
    case whose every server reads Secrets, counters or canaries reuses none)."""
    reused = {case: out_and_back(case, True) for case in CASE_NAMES}
    assert sum(1 for n in reused.values() if n) >= len(CASE_NAMES) // 2, reused


def test_the_memo_reuses_what_did_not_change() -> None:
    objects: list[KubeObject] = [ingress_class()]
    for i in range(20):
        objects += [service(f"s{i}"), endpoint_slice(f"s{i}"), ingress(f"i{i}", [(f"h{i}.test", [path("/", f"s{i}")])])]
    memo = BuildMemo()
    same_as_fresh(objects, memo)
    assert memo.reused == 0
    same_as_fresh(objects, memo)
    assert memo.reused == 20
    objects[3] = endpoint_slice("s1", ["10.0.0.9"])  # one Service's endpoints change: its host is made again
    same_as_fresh(objects, memo)
    assert memo.reused == 19


def base(regex: bool = False) -> list[KubeObject]:
    """a.test; `regex`: its paths are caseless regexes (use-regex, decided by the host's owner)"""
    return [ingress_class(), service("web"), endpoint_slice("web"),
            ingress("a", [("a.test", [path("/")])], created="2026-01-02T00:00:00Z",
                    annotations={"nginx.ingress.kubernetes.io/use-regex": "true"} if regex else None)]


# Each row: objects before, objects after; the host a.test's server depends on what changes.
CROSSING = {
    "an older Ingress of another namespace takes the host": (
        base(),
        base() + [service("web", ns="other"), endpoint_slice("web"),
                  ingress("old", [("a.test", [path("/x", "web")])], ns="other", created="2026-01-01T00:00:00Z")]),
    "an older Ingress of another namespace names the host in a rule without paths": (  # owner changes alone
        base(regex=True), base(regex=True) + [ingress("old", [("a.test", [])], ns="other",
                                                      created="2026-01-01T00:00:00Z")]),
    "a host-less rule of its namespace": (
        base(), base() + [ingress("any", [("", [path("/extra")])])]),
    "a host-less rule of another namespace": (
        base(), base() + [service("web", ns="other"), ingress("any", [("", [path("/extra")])], ns="other")]),
    "its TLS Secret appears": (
        base() + [ingress("t", [("a.test", [path("/t")])], tls=[{"hosts": ["a.test"], "secretName": "c"}])],
        base() + [ingress("t", [("a.test", [path("/t")])], tls=[{"hosts": ["a.test"], "secretName": "c"}]),
                  tls_secret("c", "a.test")]),
    "a canary for its path": (
        base(), base() + [service("canary"), endpoint_slice("canary", ["10.0.0.7"]),
                          ingress("c", [("a.test", [path("/", "canary")])],
                                  annotations={"nginx.ingress.kubernetes.io/canary": "true",
                                               "nginx.ingress.kubernetes.io/canary-weight": "10"})]),
    "its Service loses its endpoints": (
        base(), [o for o in base() if o.meta.kind != "EndpointSlice"]),
    "another Service takes its upstream name first": (  # a/b-c and a-b/c are both a-b-c-80
        [ingress_class(), service("b-c", ns="a"), endpoint_slice("b-c", ns="a"),
         ingress("y", [("y.test", [path("/", "b-c")])], ns="a")],
        [ingress_class(), service("b-c", ns="a"), endpoint_slice("b-c", ns="a"),
         ingress("y", [("y.test", [path("/", "b-c")])], ns="a"),
         service("c", ns="a-b"), endpoint_slice("c", ns="a-b"), ingress("x", [("x.test", [path("/", "c")])], ns="a-b")]),
    "an auth Secret changes": (
        base() + [ingress("s", [("s.test", [path("/")])], annotations={
            "nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "pw"})],
        base() + [ingress("s", [("s.test", [path("/")])], annotations={
            "nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "pw"}),
            dataclasses.replace(tls_secret("pw", "x"), data={"auth": b"u:$apr1$abc$def"})]),
}


@pytest.mark.parametrize("change", list(CROSSING))
def test_a_change_elsewhere_reaches_the_server(change: str) -> None:
    before, after = CROSSING[change]
    memo = BuildMemo()
    first = same_as_fresh(before, memo)
    second = same_as_fresh(after, memo)
    assert first.model != second.model  # the change shows (and a stale server would have hidden it)
    same_as_fresh(before, memo)


def test_an_isolating_build_with_a_memo_is_the_same() -> None:
    """A build that fails and retries with Ingresses left out reuses the memo in each try."""
    objects = base() + [ingress(f"i{i}", [(f"h{i}.test", [path("/")])]) for i in range(5)]
    memo = BuildMemo()
    same_as_fresh(objects, memo)
    snap = Snapshot.of(objects)
    excluded = build(snap, dataclasses.replace(options(snap, True, memo), exclude=frozenset({"default/i2"})))
    assert excluded == build(snap, dataclasses.replace(options(snap, True), exclude=frozenset({"default/i2"})))
    same_as_fresh(objects, memo)


def test_a_memo_in_use_is_left_alone() -> None:
    memo = BuildMemo()
    objects = base()
    same_as_fresh(objects, memo)
    servers = memo.servers
    with memo.lock:  # another thread's build holds it: this one builds without it
        snap = Snapshot.of(objects)
        assert build(snap, options(snap, True, memo)) == build(snap, options(snap, True))
    assert memo.servers is servers, "untouched (a build that used it keeps a new dict)"
