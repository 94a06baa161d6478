"""The RBAC in deploy/ is exactly what the code asks for. The proxy (with LoadBalancer pools
from the ConfigMap) and the two certgen Jobs run with their manifests' own args against the
API server double, authorized only by the rules their ServiceAccount is bound to in the
built overlay: every request they make is allowed, and every rule is used.
(The controller's rules are proved the same way by e2e/test_cluster_status.py.)"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy_kit import DEPLOY, containers, expanded_args, kustomize, one, rules_for

from .cluster import TOKEN, start_apiserver, write_kubeconfig
from .harness import INGRESSCTL, ROOT, wait_until

NET = f"127.103.{os.getpid() % 250}"


def granted(rules: list[dict[str, list[str]]]) -> set[tuple[str, str, str]]:
    return {(v, g, r) for rule in rules for v in rule["verbs"] for g in rule["apiGroups"] for r in rule["resources"]}


def args_of(objs: list[dict[str, Any]], first: list[str]) -> list[str]:
    for w, c in containers(objs):
        args = expanded_args(w, c)
        if args[:len(first)] == first:
            return args
    raise AssertionError(f"no container runs ingressctl {' '.join(first)}")


def lb_service(name: str, suffix: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations or {},
                         "creationTimestamp": f"2024-01-01T00:00:{suffix:02d}Z"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "ingressctl.io/lb", "clusterIP": f"{NET}.{suffix}", "ports": [{"name": "http", "port": 8080}]}}


def status_ip(api: Any, name: str) -> str:
    items = ((api.get("Service", "default", name).get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return str(items[0].get("ip", "")) if items else ""


def test_proxy_with_lb_pools_needs_exactly_its_rules(tmp_path: Path) -> None:
    objs = kustomize(DEPLOY / "overlays" / "bare-metal")
    rules = rules_for(objs, "ingressctl-proxy")
    api = start_apiserver(tmp_path, rules=rules, bookmark_interval=0.5)
    api.apply(one(objs, "ConfigMap", "ingressctl-lb-pools"), lb_service("a", 1),
              lb_service("c", 3, {"ingressctl.io/lb-pool": "nope"}))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    # the manifest's args; the netfilter mode and the node's status port swapped for loopback ones
    argv = [*INGRESSCTL, "-v", *args_of(objs, ["proxy"]), "--mode=userspace", "--kubeconfig", str(kubeconfig),
            "--status-port=0", "--nodeport-addresses=127.0.0.1/32", "--min-sync-period=0.1"]
    with (tmp_path / "proxy.log").open("w") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: status_ip(api, "a") == "192.0.2.10", 30, "the pool's address in Service a's status")
            wait_until(lambda: any(e.get("reason") == "LoadBalancerAddress" and e["involvedObject"]["name"] == "c"
                                   for e in api.list("Event", "default")), 20, "an Event for Service c")
            wait_until(lambda: ("update", "coordination.k8s.io", "leases") in api.used(), 20, "a Lease renewal")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            finally:
                if proc.poll() is None:
                    proc.kill()
                api.stop()
    print((tmp_path / "proxy.log").read_text()[-3000:])
    assert not api.denied, f"the proxy asked for more than deploy/proxy/rbac.yaml grants: {api.denied}"
    # Events are patched only when a problem is reported again after --event-interval (600 s)
    unused = granted(rules) - api.used() - {("patch", "", "events")}
    assert not unused, f"rules the proxy never used: {sorted(unused)}"


def test_certgen_jobs_need_exactly_their_rules(tmp_path: Path) -> None:
    objs = kustomize(DEPLOY / "overlays" / "nodeport")
    rules = rules_for(objs, "ingressctl-admission")
    api = start_apiserver(tmp_path, rules=rules)
    vwc = one(objs, "ValidatingWebhookConfiguration", "ingressctl-admission")
    api.apply(vwc)
    kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path))  # type: ignore[attr-defined]
    create, patch = args_of(objs, ["certgen", "create"]), args_of(objs, ["certgen", "patch"])

    def run(args: list[str]) -> str:
        r = subprocess.run([*INGRESSCTL, *args, "--kubeconfig", kubeconfig], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout

    try:
        assert "created" in run(create)
        secret = api.get("Secret", "ingressctl", "ingressctl-admission")
        api.apply({**secret, "data": {"tls.crt": "", "tls.key": "", "ca.crt": ""}})  # unusable: replaced
        assert "replaced" in run(create)
        assert "patched" in run(patch)
        ca = api.get("Secret", "ingressctl", "ingressctl-admission")["data"]["ca.crt"]
        hooks = api.get("ValidatingWebhookConfiguration", "", vwc["metadata"]["name"])["webhooks"]
        assert [h["clientConfig"]["caBundle"] for h in hooks] == [ca, ca] and base64.b64decode(ca).startswith(b"-----")
    finally:
        api.stop()
    assert not api.denied, f"certgen asked for more than deploy/webhook/certgen-rbac.yaml grants: {api.denied}"
    unused = granted(rules) - api.used()
    assert not unused, f"rules certgen never used: {sorted(unused)}"
