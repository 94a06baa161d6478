"""`ingressctl diff --kubeconfig F -f FILE` against the API server double: the cluster's
objects plus FILE, with list requests only (nothing is applied)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from .cluster import CLASS, TOKEN, endpoint_slice, ingress, service, start_apiserver, write_kubeconfig
from .harness import INGRESSCTL, ROOT
from .test_explain_kube import READ_ONLY


def test_diff_against_a_cluster_with_list_only(tmp_path: Path) -> None:
    api = start_apiserver(tmp_path, rules=READ_ONLY)
    change = ingress("web", "web.example.com", "api", path="/v2")
    (tmp_path / "change.yaml").write_text(yaml.safe_dump(change))
    try:
        api.apply(CLASS, service("web"), endpoint_slice("web", [8080]), service("api"), endpoint_slice("api", [8081]),
                  ingress("web", "web.example.com", "web", path="/app"))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
        (tmp_path / "same.yaml").write_text(yaml.safe_dump(api.get("Ingress", "default", "web")))

        def diff(name: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*INGRESSCTL, "diff", "--kubeconfig", str(kubeconfig), "-f", str(tmp_path / name)],
                                  capture_output=True, text=True, timeout=60, cwd=ROOT)

        out, same = diff("change.yaml"), diff("same.yaml")
        assert api.get("Ingress", "default", "web")["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/app"
    finally:
        api.stop()
    assert out.returncode == 1, out.stderr
    routes = out.stdout.split("\n\n")[0].splitlines()
    assert routes == ["routes:",
                      "  - web.example.com /app/ -> default/web:80 (Ingress default/web)",
                      "  + web.example.com /v2/ -> default/api:80 (Ingress default/web)",
                      "  - web.example.com = /app -> default/web:80 (Ingress default/web)",
                      "  + web.example.com = /v2 -> default/api:80 (Ingress default/web)"]
    assert "  Ingress default/web: allowed" in out.stdout
    assert same.returncode == 0, same.stdout
    assert not api.denied, api.denied
    assert {verb for verb, _, _ in api.used()} == {"list"}
