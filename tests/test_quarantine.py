"""Finding the Ingress nginx refuses: the bisection as a table, then with the real nginx -t."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.nginx.process import Nginx
from ingressctl.nginx.render import Renderer
from ingressctl.quarantine import find_culprits
from ingressctl.store import Store

from .factory import endpoint_slice, ingress, ingress_class, path, service

KEYS = [f"ns/i{n}" for n in range(20)]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fails_when(*bad: str, together: tuple[str, str] | None = None):
    def fails(excluded: frozenset[str]) -> bool:
        present = set(KEYS) - excluded
        return bool(present & set(bad)) or (together is not None and set(together) <= present)
    return fails


@pytest.mark.parametrize("fails, culprits", [
    (fails_when("ns/i7"), ["ns/i7"]),
    (fails_when("ns/i0"), ["ns/i0"]),
    (fails_when("ns/i19"), ["ns/i19"]),
    (fails_when("ns/i3", "ns/i12"), ["ns/i3", "ns/i12"]),
    (fails_when(*KEYS[2:9]), KEYS[2:9]),  # more culprits than the old limit of 5
    (fails_when(together=("ns/i2", "ns/i9")), ["ns/i9"]),  # a pair: the newer one goes
    (fails_when(together=("ns/i12", "ns/i13")), ["ns/i13"]),  # a pair inside one half
    (lambda excluded: True, []),  # not caused by Ingresses (excluding all does not help)
    (lambda excluded: False, []),
])
def test_find_culprits(fails, culprits):
    assert sorted(find_culprits(KEYS, fails).culprits) == sorted(culprits)


def counting(fails):
    calls = []

    def wrapped(excluded):
        calls.append(excluded)
        return fails(excluded)
    return wrapped, calls


def test_a_few_suspects_are_tried_each_on_its_own_first():
    fails, calls = counting(fails_when("ns/i17"))
    search = find_culprits(KEYS, fails, suspects=["ns/i15", "ns/i17"], known_failing=True)
    assert search.culprits == ("ns/i17",)
    assert calls == [frozenset(KEYS) - {"ns/i15"}, frozenset(KEYS) - {"ns/i17"}, frozenset({"ns/i17"})]
    # a pair among the suspects passes alone: the group search keeps the other keys in every test
    fails, calls = counting(fails_when(together=("ns/i15", "ns/i17")))
    assert find_culprits(KEYS, fails, suspects=["ns/i15", "ns/i17"], known_failing=True).culprits == ("ns/i17",)
    assert all(set(excluded) <= {"ns/i15", "ns/i17"} for excluded in calls[2:])
    # the culprit is not among the suspects (an interaction with a change elsewhere): widen
    assert find_culprits(KEYS, fails_when("ns/i3"), suspects=["ns/i15"]).culprits == ("ns/i3",)


def test_culprits_are_grouped_by_namespace_and_the_budget_leaves_failing_groups_out_whole():
    keys = [f"{ns}/i{n}" for n in range(50) for ns in ("a", "evil", "z")]  # namespaces interleaved by age
    bad = {f"evil/i{n}" for n in range(0, 50, 2)}  # 25 culprits, all in one namespace

    def fails(excluded):
        return bool(bad - excluded)

    full = find_culprits(keys, fails)
    assert set(full.culprits) == bad and not full.unresolved
    cut = find_culprits(keys, fails, budget=20)
    left_out = set(cut.culprits) | set(cut.unresolved)
    assert bad <= left_out and {k.partition("/")[0] for k in left_out} == {"evil"}


def test_search_cost_grows_with_culprits_times_log_n():
    keys = [f"ns/i{n}" for n in range(10_000)]
    bad = {"ns/i17", "ns/i2500", "ns/i5001", "ns/i7777", "ns/i9999"}
    fails, calls = counting(lambda excluded: bool(bad - excluded))
    assert set(find_culprits(keys, fails).culprits) == bad
    assert len(calls) <= 2 * len(bad) * 14 + 2


def test_an_ingress_nginx_refuses_is_left_out_and_the_rest_goes_live(tmp_path: Path):
    """A template that breaks for one host stands in for any input validation let through."""
    store = Store()
    store.replace(None, [ingress_class(), service(), endpoint_slice(),
                         ingress("good", [("good.test", [path("/")])]),
                         ingress("poison", [("poison.test", [path("/")])], created="2026-02-01T00:00:00Z"),
                         ingress("later", [("later.test", [path("/")])], created="2026-03-01T00:00:00Z")])
    opts = ControllerOptions(state_dir=tmp_path / "state", http_port=_free_port(), https_port=_free_port(),
                             listen=("127.0.0.1:",))
    builtin = Renderer().builtin
    poisoned = builtin["server.j2"].replace(
        "{% for loc in server.locations %}",
        "{% if server.host == 'poison.test' %}        no_such_directive on;\n{% endif %}"
        "{% for loc in server.locations %}", 1)
    assert poisoned != builtin["server.j2"]
    nginx = Nginx(opts.prefix)
    ctl = Controller(store, opts, nginx)
    ctl.templates.builtin = Renderer(sources={"server.j2": poisoned})
    nginx.prepare()
    from ingressctl.nginx.defaultcert import ensure_default_certificate

    ensure_default_certificate(opts.prefix / "certs" / "default.pem")
    seen = []
    ctl.observers.append(seen.append)
    try:
        outcome = ctl.sync()
        assert outcome.ok, outcome.message
        conf = (opts.prefix / "nginx.conf").read_text()
        assert "server_name good.test;" in conf and "server_name later.test;" in conf
        assert "poison.test" not in conf
        problems = [p for p in seen[-1].problems if p.reason == "NginxRejected"]
        assert [(p.name, "no_such_directive" in p.message) for p in problems] == [("poison", True)]
        # an edit releases it: fixed here by moving it to a host the template does not poison
        store.apply(ingress("poison", [("cured.test", [path("/")])], created="2026-02-01T00:00:00Z"))
        assert ctl.sync().ok
        assert "server_name cured.test;" in (opts.prefix / "nginx.conf").read_text()
        assert not ctl.quarantine.entries
    finally:
        nginx.stop(graceful=False)


def test_six_culprits_on_a_fresh_start_and_an_edit_that_still_fails_stays_out(tmp_path: Path):
    store = Store()
    objs = [ingress_class(), service(), endpoint_slice()]
    objs += [ingress(f"good{n}", [(f"good{n}.test", [path("/")])]) for n in range(30)]
    objs += [ingress(f"p{n}", [(f"poison{n}.test", [path("/")])], ns=f"team{n}") for n in range(6)]
    store.replace(None, objs)
    opts = ControllerOptions(state_dir=tmp_path / "state", http_port=_free_port(), https_port=_free_port(),
                             listen=("127.0.0.1:",))
    builtin = Renderer().builtin
    poisoned = builtin["server.j2"].replace(
        "{% for loc in server.locations %}",
        "{% if server.host.startswith('poison') %}        no_such_directive on;\n{% endif %}"
        "{% for loc in server.locations %}", 1)
    nginx = Nginx(opts.prefix)
    ctl = Controller(store, opts, nginx)
    ctl.templates.builtin = Renderer(sources={"server.j2": poisoned})
    nginx.prepare()
    from ingressctl.nginx.defaultcert import ensure_default_certificate

    ensure_default_certificate(opts.prefix / "certs" / "default.pem")
    try:
        assert ctl.sync().ok
        assert sorted(ctl.quarantine.entries) == [f"team{n}/p{n}" for n in range(6)]
        conf = (opts.prefix / "nginx.conf").read_text()
        assert re.search(r"server_name [^;]*\bgood29\.test[ ;]", conf) and "poison" not in conf  # maybe shared
        # an edit that still makes nginx -t fail does not release it (nor start a new search)
        store.apply(ingress("p0", [("poison-again.test", [path("/")])], ns="team0"))
        assert ctl.sync().ok
        assert "team0/p0" in ctl.quarantine.entries
        assert "poison-again" in ctl.quarantine.entries["team0/p0"].ingress.rules[0].host
        # an edit that passes on its own does
        store.apply(ingress("p0", [("cured.test", [path("/")])], ns="team0"))
        assert ctl.sync().ok
        assert "team0/p0" not in ctl.quarantine.entries
        assert "server_name cured.test;" in (opts.prefix / "nginx.conf").read_text()
    finally:
        nginx.stop(graceful=False)
