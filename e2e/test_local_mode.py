"""e2e: `ingressctl run` with real nginx and real HTTP backends on loopback."""

from __future__ import annotations

import collections
import os
import signal
import time

import pytest

from tests.factory import tls_secret

from .harness import INGRESS_CLASS, Backends, LocalController, manifests_for_backends, request


def _ingress(name: str, host: str, paths: list[tuple[str, str, str]], created: str = "2026-01-01T00:00:00Z",
             extra_spec: str = "", annotations: str = "") -> str:
    host_line = f"- host: \"{host}\"\n    http:" if host else "- http:"
    lines = "\n".join(
        f"      - {{path: {p}, pathType: {t}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}"
        for p, t, svc in paths)
    return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n"
            f"  creationTimestamp: \"{created}\"\n  annotations: {{{annotations}}}\n"
            f"spec:\n  ingressClassName: nginx\n{extra_spec}  rules:\n  {host_line}\n      paths:\n{lines}\n")


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """Services a, b, c (one echo backend each) and one Ingress exercising the path rules."""
    backends = Backends()
    controller = LocalController(tmp_path_factory.mktemp("routed"))
    controller.write("00-class.yaml", INGRESS_CLASS)
    controller.start()
    for name in ("a", "b", "c"):
        controller.write(f"svc-{name}.yaml", manifests_for_backends("default", name, [backends.start(name)]))
    controller.write("ing.yaml", _ingress("main", "exact.test", [
        ("/", "Prefix", "a"), ("/foo", "Prefix", "b"), ("/foo", "Exact", "c"), ("/foo/bar", "Prefix", "c"),
        ("/Case", "Exact", "b"), ("/slash/", "Prefix", "b")]))
    controller.write("wild.yaml", _ingress("wild", "*.wild.test", [("/", "Prefix", "b")]))
    controller.write("exact-in-wild.yaml", _ingress("exactw", "x.wild.test", [("/", "Prefix", "c")]))
    try:
        controller.wait_for(lambda: controller.get("x.wild.test").backend == "c", what="all manifests live")
        yield controller
    finally:
        controller.stop()
        backends.stop()


@pytest.mark.parametrize("host, path, backend_or_status", [
    ("exact.test", "/", "a"),
    ("exact.test", "/anything", "a"),
    ("exact.test", "/foo", "c"),  # Exact beats Prefix at equal length
    ("exact.test", "/foo/", "b"),
    ("exact.test", "/foo/x", "b"),
    ("exact.test", "/foobar", "a"),  # Prefix matches whole elements only
    ("exact.test", "/foo/bar", "c"),  # longest match
    ("exact.test", "/foo/bar/baz", "c"),
    ("exact.test", "/foo/barbaz", "b"),
    ("exact.test", "/Case", "b"),
    ("exact.test", "/case", "a"),  # case sensitive
    ("exact.test", "/Case/", "a"),  # Exact has no trailing-slash leeway
    ("exact.test", "/slash", "b"),  # trailing slash in a Prefix rule is ignored
    ("exact.test", "/slash/x", "b"),
    ("one.wild.test", "/", "b"),  # wildcard: one label
    ("x.wild.test", "/", "c"),  # exact host beats wildcard
    ("two.levels.wild.test", "/", 404),  # wildcard: not two labels
    ("wild.test", "/", 404),
    ("nomatch.test", "/", 404),  # default backend: 404
])
def test_routing(routed, host, path, backend_or_status):
    r = routed.get(host, path)
    if isinstance(backend_or_status, int):
        assert r.status == backend_or_status
    else:
        assert (r.status, r.backend) == (200, backend_or_status)
        assert r.json()["path"] == path  # the path reaches the backend unchanged


def test_forwarded_headers(routed):
    h = routed.get("exact.test", "/").json()["headers"]
    assert h["x-forwarded-for"] == "127.0.0.1" and h["x-real-ip"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http" and h["x-forwarded-host"] == "exact.test"


def test_load_is_spread_over_all_endpoints(controller, backends):
    ports = [backends.start(f"e{i}") for i in range(3)]
    controller.write("svc.yaml", manifests_for_backends("default", "spread", ports))
    controller.write("ing.yaml", _ingress("s", "spread.test", [("/", "Prefix", "spread")]))
    controller.wait_for(lambda: controller.get("spread.test").status == 200)
    seen = collections.Counter(controller.get("spread.test").backend for _ in range(90))
    assert set(seen) == {"e0", "e1", "e2"}
    assert min(seen.values()) >= 20, seen  # round robin: 30 each


def test_edits_are_followed_without_restart_and_endpoints_removed_give_503(controller, backends):
    controller.write("svc.yaml", manifests_for_backends("default", "a", [backends.start("a")]))
    controller.write("ing.yaml", _ingress("i", "edit.test", [("/", "Prefix", "a")]))
    controller.wait_for(lambda: controller.get("edit.test").backend == "a")
    pid = controller.nginx_pid()
    controller.write("svc-b.yaml", manifests_for_backends("default", "b", [backends.start("b")]))
    controller.write("ing.yaml", _ingress("i", "edit.test", [("/", "Prefix", "b")]))
    took = controller.wait_for(lambda: controller.get("edit.test").backend == "b", timeout=3)
    assert controller.nginx_pid() == pid, "nginx must be reloaded, not restarted"
    print(f"edit -> traffic followed in {took:.2f}s")
    controller.write("svc-b.yaml", manifests_for_backends("default", "b", []))
    controller.wait_for(lambda: controller.get("edit.test").status == 503)


def test_ingress_class_filtering(controller, backends):
    controller.write("svc.yaml", manifests_for_backends("default", "a", [backends.start("a")]))
    theirs = _ingress("theirs", "theirs.test", [("/", "Prefix", "a")]).replace(
        "ingressClassName: nginx", "ingressClassName: other")
    other_class = ("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: other}\n"
                   "spec: {controller: example.com/other}\n")
    controller.write("other.yaml", other_class + "---\n" + theirs)
    controller.write("ours.yaml", _ingress("ours", "ours.test", [("/", "Prefix", "a")]))
    controller.wait_for(lambda: controller.get("ours.test").status == 200)
    assert controller.get("theirs.test").status == 404


def test_broken_file_does_not_break_the_rest(controller, backends):
    controller.write("svc.yaml", manifests_for_backends("default", "a", [backends.start("a")]))
    controller.write("good.yaml", _ingress("good", "good.test", [("/", "Prefix", "a")]))
    controller.write("later.yaml", _ingress("later", "later.test", [("/", "Prefix", "a")]))
    controller.wait_for(lambda: controller.get("later.test").status == 200)
    reloads = controller.reloads()
    controller.write("later.yaml", "apiVersion: v1\nkind: Ingress\nmetadata: {name: [unclosed\n")
    controller.write("bad-ingress.yaml", _ingress("bad", "bad.test", [("/x;return 200", "Prefix", "a")]))
    controller.write("good2.yaml", _ingress("good2", "good2.test", [("/", "Prefix", "a")]))
    controller.wait_for(lambda: controller.get("good2.test").status == 200)
    assert controller.get("good.test").status == 200
    assert controller.get("later.test").status == 200, "last good objects of a broken file stay in force"
    assert controller.get("bad.test").status == 404
    # counted once no old worker accepts (README, "live"): a moment after new workers answer
    controller.wait_for(lambda: controller.reloads() > reloads, what="the reload counted")
    # file and line (the unclosed '[' runs to the end); the file shrank, so it is reported once
    # its size held still for the settle time (it could have been a write in progress)
    controller.wait_for(lambda: "later.yaml:4: invalid YAML" in controller.log(), what="the YAML error reported")
    log = controller.log()
    assert "Ingress default/bad: InvalidIngress" in log


def test_tls_sni_default_certificate_and_redirect(controller, backends, tmp_path):
    import base64

    from ingressctl.objects import Secret

    secret: Secret = tls_secret("tls", "secure.test")  # type: ignore[assignment]
    crt, key = (base64.b64encode(secret.data[k]).decode() for k in ("tls.crt", "tls.key"))
    controller.write("secret.yaml", f"apiVersion: v1\nkind: Secret\nmetadata: {{name: tls, namespace: default}}\n"
                     f"type: kubernetes.io/tls\ndata:\n  tls.crt: {crt}\n  tls.key: {key}\n")
    controller.write("svc.yaml", manifests_for_backends("default", "a", [backends.start("a")]))
    tls = "  tls:\n  - hosts: [secure.test]\n    secretName: tls\n"
    controller.write("ing.yaml", _ingress("s", "secure.test", [("/", "Prefix", "a")], extra_spec=tls))
    controller.write("missing.yaml", _ingress("m", "missing.test", [("/", "Prefix", "a")],
                     extra_spec="  tls:\n  - hosts: [missing.test]\n    secretName: nope\n"))
    # the configuration with every file above is live: new workers answer, no old one accepts
    # (one answer from a new worker proves nothing for the next connection, which an old
    # worker of the previous generation may still take until the reload completes)
    controller.wait_for(lambda: controller.live_config_has("# missing.test\n"), timeout=15,
                        what="the configuration with both hosts live")
    assert controller.get("secure.test", tls=True).peer_cn == "secure.test"
    r = controller.get("secure.test", "/p?q=1")
    assert r.status == 308
    assert r.headers["location"] == "https://secure.test/p?q=1"  # no listen port, as ingress-nginx
    r = controller.get("secure.test", tls=True)
    assert (r.status, r.backend) == (200, "a") and "max-age" in r.headers["strict-transport-security"]
    assert r.json()["headers"]["x-forwarded-proto"] == "https"
    default_cn = "ingressctl default certificate"
    assert controller.get("unknown.test", tls=True).peer_cn == default_cn
    assert controller.get("missing.test", tls=True).peer_cn == default_cn  # broken Secret: default cert
    assert controller.get("missing.test", tls=True).status == 200


def test_template_override_that_fails_falls_back_to_last_good(tmp_path, backends):
    templates = tmp_path / "templates"
    templates.mkdir()
    from ingressctl.nginx.render import Renderer

    builtin = Renderer().builtin["location.j2"]
    anchor = "            set $proxy_upstream_name"
    assert anchor in builtin
    marked = builtin.replace(anchor, "            add_header X-Override v1 always;\n" + anchor, 1)
    (templates / "location.j2").write_text(marked)
    ctl = LocalController(tmp_path, extra_args=["--template-dir", str(templates)])
    ctl.write("00-class.yaml", "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n"
                               "spec: {controller: ingressctl.io/ingress-controller}\n")
    ctl.write("svc.yaml", manifests_for_backends("default", "a", [backends.start("a")]))
    ctl.write("ing.yaml", _ingress("t", "tpl.test", [("/", "Prefix", "a")]))
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("tpl.test").headers.get("x-override") == "v1")
        failures = ctl.metric("ingressctl_nginx_reload_failures_total")
        # passes Jinja2 but nginx -t refuses it: the last good override must keep serving
        (templates / "location.j2").write_text(marked.replace("always;", "always; bogus_directive on;"))
        ctl.wait_for(lambda: ctl.metric("ingressctl_nginx_reload_failures_total") > failures)
        # an edit to the objects still goes live through the last good override
        ctl.write("ing.yaml", _ingress("t", "tpl2.test", [("/", "Prefix", "a")]))
        ctl.wait_for(lambda: ctl.get("tpl2.test").status == 200)
        assert ctl.get("tpl2.test").headers.get("x-override") == "v1"
        # a template that does not even render
        (templates / "location.j2").write_text("{{ undefined_variable.oops }}")
        ctl.write("ing.yaml", _ingress("t", "tpl3.test", [("/", "Prefix", "a")]))
        ctl.wait_for(lambda: ctl.get("tpl3.test").status == 200)
        assert ctl.get("tpl3.test").headers.get("x-override") == "v1"
    finally:
        ctl.stop()


def test_nginx_killed_is_restarted(controller, backends):
    controller.write("svc.yaml", manifests_for_backends("default", "a", [backends.start("a")]))
    controller.write("ing.yaml", _ingress("k", "kill.test", [("/", "Prefix", "a")]))
    controller.wait_for(lambda: controller.get("kill.test").status == 200)
    os.killpg(controller.nginx_pid(), signal.SIGKILL)  # master and workers, as the OOM killer would
    controller.wait_for(lambda: not _answers(controller, "kill.test"), what="nginx down")
    controller.wait_for(lambda: controller.get("kill.test").status == 200, timeout=10, what="nginx restarted")
    controller.wait_for(lambda: controller.metric("ingressctl_nginx_restarts_total") >= 1, what="restart counted")


def _answers(controller: LocalController, host: str) -> bool:
    try:
        return controller.get(host, timeout=1).status == 200
    except OSError:
        return False


def test_readyz_and_metrics(controller):
    assert controller.status("/readyz") == (200, "configuration live\n")
    assert controller.status("/healthz")[0] == 200
    _, text = controller.status("/metrics")
    for name in ("ingressctl_nginx_reloads_total", "ingressctl_nginx_reload_failures_total",
                 "ingressctl_nginx_last_reload_successful", "ingressctl_config_hash",
                 "ingressctl_sync_duration_seconds_bucket"):
        assert name in text


def test_hot_reload_drops_no_requests(controller, backends):
    controller.write("svc.yaml", manifests_for_backends("default", "a", [backends.start("a")]))
    controller.write("ing.yaml", _ingress("r", "reload.test", [("/", "Prefix", "a")]))
    controller.wait_for(lambda: controller.get("reload.test").status == 200)
    # A 200 from one new worker is not "live": old workers may still accept for ~100 ms and
    # answer 404 for reload.test. Wait for the controller's word (issue 11, item 2).
    controller.wait_live()
    import threading

    statuses: collections.Counter[int] = collections.Counter()
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < deadline and sum(statuses.values()) < 5000:
            try:
                statuses[request(controller.http_port, "reload.test", "/").status] += 1
            except OSError:
                statuses[0] += 1

    t = threading.Thread(target=load)
    t.start()
    for i in range(5):  # five reloads under load
        controller.write(f"extra-{i}.yaml", _ingress(f"x{i}", f"x{i}.test", [("/", "Prefix", "a")]))
        controller.wait_for(lambda i=i: controller.get(f"x{i}.test").status == 200)
    stop.set()
    t.join()
    assert statuses[200] > 50 and set(statuses) == {200}, statuses
