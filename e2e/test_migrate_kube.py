"""`ingressctl migrate check --kubeconfig` against the API server double: the realistic export
of tests/migrate/ loaded into the double gives the same golden report, with list requests only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from .cluster import TOKEN, start_apiserver, write_kubeconfig
from .harness import INGRESSCTL, ROOT

EXPORT = ROOT / "tests" / "migrate"
READ_ONLY = [{"apiGroups": ["", "networking.k8s.io", "discovery.k8s.io", "apps"],
              "resources": ["ingresses", "ingressclasses", "services", "endpointslices", "secrets", "configmaps",
                            "deployments", "daemonsets"],
              "verbs": ["list"]}]


def test_migrate_check_reads_a_cluster_with_list_only(tmp_path: Path) -> None:
    api = start_apiserver(tmp_path, rules=READ_ONLY)
    try:
        items = yaml.safe_load((EXPORT / "export.yaml").read_text())["items"]
        api.apply(*items)
        # The double stamps creationTimestamp at create time; give the objects the history the export has
        # (which Ingress is older decides conflicts).
        created = {(i["metadata"].get("namespace", ""), i["metadata"]["name"]): i["metadata"]["creationTimestamp"]
                   for i in items if i["kind"] == "Ingress"}
        for (_, plural, ns, name), obj in api.store.objects.items():
            if plural == "ingresses":
                obj["metadata"]["creationTimestamp"] = created[(ns, name)]
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
        out = subprocess.run([*INGRESSCTL, "migrate", "check", "--kubeconfig", str(kubeconfig)],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        api.stop()
    assert out.returncode == 2, out.stderr
    assert out.stdout == (EXPORT / "expected.txt").read_text()
    assert not api.denied, api.denied
    assert {verb for verb, _, _ in api.used()} == {"list"}
