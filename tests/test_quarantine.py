"""Finding the Ingress nginx refuses: the bisection as a table, then with the real nginx -t."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingressctl.controller import Controller, ControllerOptions
from ingressctl.nginx.process import Nginx
from ingressctl.nginx.render import Renderer
from ingressctl.quarantine import SearchBudgetExceeded, find_culprits
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
    (fails_when(together=("ns/i2", "ns/i9")), ["ns/i9"]),  # a pair: the newer one goes
    (lambda excluded: True, []),  # not caused by Ingresses (excluding all does not help)
    (lambda excluded: False, []),
])
def test_find_culprits(fails, culprits):
    assert find_culprits(KEYS, fails) == culprits


def test_search_is_bounded():
    calls = []

    def fails(excluded):
        calls.append(excluded)
        return len(excluded) < len(KEYS)  # every Ingress is "bad"

    assert find_culprits(KEYS, fails, limit=3) == ["ns/i0", "ns/i1", "ns/i2"]
    with pytest.raises(SearchBudgetExceeded):
        find_culprits(KEYS, fails, limit=20, budget=10)


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
    ctl.builtin = Renderer(sources={"server.j2": poisoned})
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
