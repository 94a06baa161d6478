"""e2e: endpoint changes go live through the Lua balancer without a reload."""

from __future__ import annotations

import collections
import os
import signal

from .harness import INGRESS_CLASS, LocalController, manifests_for_backends

ING = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: dyn, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: dyn.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: dyn, port: {number: 80}}}}
"""


def _start(tmp_path, *extra):
    ctl = LocalController(tmp_path, extra_args=list(extra))
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("ing.yaml", ING)
    return ctl


def test_endpoint_changes_without_reload(tmp_path, backends):
    ports = [backends.start(f"d{i}") for i in range(3)]
    ctl = _start(tmp_path)
    ctl.write("svc.yaml", manifests_for_backends("default", "dyn", ports[:1]))
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("dyn.test").backend == "d0")
        reloads, pid = ctl.reloads(), ctl.nginx_pid()
        conf = (ctl.state_dir / "nginx" / "nginx.conf").read_text()
        assert "balancer_by_lua_block" in conf and "127.0.0.1:%d" % ports[0] not in conf
        ctl.write("svc.yaml", manifests_for_backends("default", "dyn", ports))  # scale up
        ctl.wait_for(lambda: len({ctl.get("dyn.test").backend for _ in range(6)}) == 3, what="3 endpoints")
        seen = collections.Counter(ctl.get("dyn.test").backend for _ in range(60))
        assert set(seen) == {"d0", "d1", "d2"} and min(seen.values()) >= 15, seen
        ctl.write("svc.yaml", manifests_for_backends("default", "dyn", ports[2:]))  # scale down
        ctl.wait_for(lambda: all(ctl.get("dyn.test").backend == "d2" for _ in range(6)), what="only d2")
        assert ctl.reloads() == reloads, "endpoint-only changes must not reload nginx"
        assert ctl.nginx_pid() == pid
        assert ctl.metric("ingressctl_endpoint_updates_total") >= 2
        # the last endpoint gone: a full sync renders 503 (a reload is fine here)
        ctl.write("svc.yaml", manifests_for_backends("default", "dyn", []))
        ctl.wait_for(lambda: ctl.get("dyn.test").status == 503)
        ctl.write("svc.yaml", manifests_for_backends("default", "dyn", ports[1:2]))
        ctl.wait_for(lambda: ctl.get("dyn.test").backend == "d1")
        # nginx dies: it comes back with the current endpoints (init_by_lua reads the table file)
        os.killpg(ctl.nginx_pid(), signal.SIGKILL)
        ctl.wait_for(lambda: _backend(ctl) == "d1", timeout=10, what="restart with current endpoints")
    finally:
        ctl.stop()


def test_dead_endpoint_is_retried_on_the_next_one(tmp_path, backends):
    live = backends.start("live")
    from .harness import free_port

    dead, dead2 = free_port(), free_port()  # nothing listens there
    ctl = _start(tmp_path)
    ctl.write("svc.yaml", manifests_for_backends("default", "dyn", [dead, live, dead2]))
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("dyn.test").status == 200)
        assert all(ctl.get("dyn.test").backend == "live" for _ in range(30))
    finally:
        ctl.stop()


def test_without_lua_endpoint_changes_reload(tmp_path, backends):
    ports = [backends.start(f"s{i}") for i in range(2)]
    ctl = _start(tmp_path, "--dynamic-endpoints", "off")
    ctl.write("svc.yaml", manifests_for_backends("default", "dyn", ports[:1]))
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("dyn.test").backend == "s0")
        conf = (ctl.state_dir / "nginx" / "nginx.conf").read_text()
        assert "balancer_by_lua" not in conf and f"127.0.0.1:{ports[0]}" in conf
        reloads = ctl.reloads()
        ctl.write("svc.yaml", manifests_for_backends("default", "dyn", ports[1:]))
        ctl.wait_for(lambda: ctl.get("dyn.test").backend == "s1")
        ctl.wait_for(lambda: ctl.reloads() == reloads + 1, what="the reload counted")
    finally:
        ctl.stop()


def _backend(ctl: LocalController) -> str:
    try:
        return ctl.get("dyn.test", timeout=1).backend
    except OSError:
        return ""
