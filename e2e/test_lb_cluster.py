"""LoadBalancer IP pools in cluster mode, against the API server double: the Lease holder
writes `status.loadBalancer.ingress`, keeps addresses already published, reports a Service
it cannot serve as an Event, leaves other loadBalancerClasses alone, and reuses a released
address; all within the rules of deploy/proxy/rbac.yaml."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster import TOKEN, objects, start_apiserver, write_kubeconfig
from .harness import INGRESSCTL, ROOT, wait_until

NET = f"127.102.{os.getpid() % 250}"

POOLS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: ingressctl-lb-pools, namespace: ingressctl}
data:
  pools.yaml: |
    pools:
    - {name: public, addresses: [192.0.2.10-192.0.2.12]}
"""


def lb_service(name: str, ip_suffix: int, age: int, status: str = "", **spec: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
                     "creationTimestamp": f"2024-01-01T00:00:{age:02d}Z",
                     "annotations": spec.pop("annotations", {})},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "ingressctl.io/lb", "clusterIP": f"{NET}.{ip_suffix}",
                 "ports": [{"name": "http", "port": 8080}], **spec}}
    if status:
        raw["status"] = {"loadBalancer": {"ingress": [{"ip": status}]}}
    return raw


def status_ip(api: Any, name: str) -> str:
    try:
        obj = api.get("Service", "default", name)
    except Exception:  # not there (yet)
        return ""
    items = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return str(items[0].get("ip", "")) if items else ""


def proxy_rbac_rules() -> list[dict[str, list[str]]]:
    """ClusterRole + Role rules of deploy/proxy/rbac.yaml: the test proves they suffice."""
    docs = yaml.safe_load_all((ROOT / "deploy" / "proxy" / "rbac.yaml").read_text())
    return [r for d in docs if d and d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    server = start_apiserver(tmp_path, rules=proxy_rbac_rules(), bookmark_interval=0.5)
    yield server
    server.stop()
    assert not server.denied, f"requests outside deploy/proxy/rbac.yaml: {server.denied}"


def test_leader_allocates_from_a_configmap_pool(tmp_path: Path, api: Any) -> None:
    api.apply(*objects(POOLS))
    api.apply(lb_service("a", 1, age=1), lb_service("b", 2, age=2, status="192.0.2.11"),
              lb_service("c", 3, age=3, annotations={"ingressctl.io/lb-pool": "nope"}),
              lb_service("d", 4, age=4, loadBalancerClass="example.com/cloud"))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)
    log = (tmp_path / "proxy.log").open("w")
    proc = subprocess.Popen(
        [*INGRESSCTL, "-v", "proxy", "--mode", "userspace", "--kubeconfig", str(kubeconfig),
         "--lb-pools", "configmap:ingressctl/ingressctl-lb-pools", "--lb-lease", "ingressctl/ingressctl-lb",
         "--status-port", "0", "--nodeport-addresses", "127.0.0.1/32", "--min-sync-period", "0.1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: status_ip(api, "a") == "192.0.2.10", 20, "status of Service a")
        assert status_ip(api, "b") == "192.0.2.11"  # already published: kept
        assert status_ip(api, "d") == ""  # another implementation's class: untouched
        wait_until(lambda: any(e.get("reason") == "LoadBalancerAddress"
                               and e["involvedObject"]["name"] == "c" for e in api.list("Event", "default")),
                   20, "an Event for Service c")
        assert status_ip(api, "c") == ""
        lease = api.get("Lease", "ingressctl", "ingressctl-lb")
        assert lease["spec"]["holderIdentity"]

        api.remove("Service", "default", "a")  # released ...
        api.apply(lb_service("e", 5, age=5))  # ... and given to the next one
        wait_until(lambda: status_ip(api, "e") == "192.0.2.10", 20, "the released address reused")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
            print((tmp_path / "proxy.log").read_text()[-3000:])
