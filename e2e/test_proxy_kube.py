"""`ingressctl proxy --kubeconfig`: Services and EndpointSlices from the API server double.

Only list and watch of those two kinds are allowed (what a proxy's ClusterRole grants), so
this also proves the proxy asks for nothing else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .cluster import TOKEN, start_apiserver, write_kubeconfig

RULES = [{"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]},
         {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]


def test_dry_run_from_the_api(tmp_path: Path) -> None:
    api = start_apiserver(tmp_path, rules=RULES)
    try:
        api.apply(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"clusterIP": "10.96.7.7", "type": "NodePort",
                      "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30777}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
             "metadata": {"name": "web-1", "namespace": "shop",
                          "labels": {"kubernetes.io/service-name": "web"}},
             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
             "endpoints": [{"addresses": ["10.244.5.5"], "nodeName": "n1"}]})
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
        out = subprocess.run([sys.executable, "-m", "ingressctl.cli", "proxy", "--mode", "nftables",
                              "--kubeconfig", str(kubeconfig), "--dry-run", "--node-name", "n1"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        assert "10.96.7.7 . tcp . 80 : goto dnat-1" in out.stdout
        assert "tcp . 30777 : goto nodeport-dnat-1" in out.stdout
        assert "10.96.7.7 . tcp . 80 . 0 : 10.244.5.5 . 8080" in out.stdout
        assert api.used() == {("list", "", "services"), ("list", "discovery.k8s.io", "endpointslices")}
        assert not api.denied
    finally:
        api.stop()


def test_unreachable_api_is_one_line(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9", TOKEN, None)
    out = subprocess.run([sys.executable, "-m", "ingressctl.cli", "proxy", "--mode", "iptables",
                          "--kubeconfig", str(kubeconfig), "--dry-run"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("ingressctl proxy: ") and len(out.stderr.strip().splitlines()) == 1
    assert "127.0.0.1:9" in out.stderr
