"""`ingressctl explain --kubeconfig` against the API server double: it reads with list
requests only (a read-only role suffices) and explains the cluster's objects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from .cluster import CLASS, TOKEN, endpoint_slice, ingress, service, start_apiserver, write_kubeconfig
from .harness import INGRESSCTL, ROOT

READ_ONLY = [{"apiGroups": ["", "networking.k8s.io", "discovery.k8s.io"],
              "resources": ["ingresses", "ingressclasses", "services", "endpointslices", "secrets", "configmaps"],
              "verbs": ["list"]}]


def test_explain_reads_a_cluster_with_list_only(tmp_path: Path) -> None:
    api = start_apiserver(tmp_path, rules=READ_ONLY)
    try:
        api.apply(CLASS, service("web"), endpoint_slice("web", [8080]),
                  ingress("web", "web.example.com", "web", path="/app"),
                  ingress("bad", "bad.example.com", "web", annotations={
                      "nginx.ingress.kubernetes.io/proxy-body-size": "huge"}))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
        run = lambda url: subprocess.run([*INGRESSCTL, "explain", "--kubeconfig", str(kubeconfig), url, "-o", "json"],
                                         capture_output=True, text=True, timeout=60, cwd=ROOT)
        ok, bad = run("http://web.example.com/app/x"), run("http://bad.example.com/")
    finally:
        api.stop()
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert (doc["status"], doc["ingress"], doc["backend"], doc["location"]) == (
        None, "default/web", {"service": "default/web", "port": 80}, "/app/")
    assert doc["endpoints"] == [{"address": "127.0.0.1", "port": 8080, "ready": True, "serving": True,
                                 "terminating": False, "used": True}]
    refused = json.loads(bad.stdout)
    assert refused["status"] == 404 and refused["ingress"] is None
    assert any(r.startswith("no route: Ingress default/bad was refused: InvalidAnnotation") for r in refused["reasons"])
    assert not api.denied, api.denied
    assert {verb for verb, _, _ in api.used()} == {"list"}


def test_context_picks_another_kubeconfig_context(tmp_path: Path) -> None:
    api = start_apiserver(tmp_path, rules=READ_ONLY)
    try:
        api.apply(CLASS, service("web"), endpoint_slice("web", [8080]), ingress("web", "web.example.com", "web"))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
        doc = yaml.safe_load(kubeconfig.read_text())
        doc["clusters"].append({"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}})
        doc["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": "e2e"}})
        doc["current-context"] = "gone"
        kubeconfig.write_text(yaml.safe_dump(doc))
        run = lambda *a: subprocess.run([*INGRESSCTL, "explain", "--kubeconfig", str(kubeconfig), *a,
                                         "http://web.example.com/", "-o", "json"],
                                        capture_output=True, text=True, timeout=60, cwd=ROOT)
        current, chosen = run(), run("--context", "e2e")
    finally:
        api.stop()
    assert current.returncode == 1 and len(current.stderr.strip().splitlines()) == 1, current.stderr
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout)["backend"] == {"service": "default/web", "port": 80}
