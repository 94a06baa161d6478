"""`ingressctl proxy`: flags, dry-run output, and the one-line errors a user gets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ingressctl import cli
from ingressctl.commands import proxy as proxy_cmd
from ingressctl.proxy.backends import base as backend_mod

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [10.244.1.2], nodeName: n1}
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    (tmp_path / "web.yaml").write_text(MANIFEST)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["proxy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("mode,expect", [
    ("nftables", ["add element ip ingressctl service-ips { 10.96.0.2 . tcp . 80 : goto dnat-1 }",
                  "service-nodeports { tcp . 30000 : goto nodeport-dnat-1 }",
                  "endpoints-1 { 10.96.0.2 . tcp . 80 . 0 : 10.244.1.2 . 8080 }"]),
    ("iptables", ["-A ICP-SERVICES -d 10.96.0.2/32 -p tcp -m tcp --dport 80",
                  "--dport 30000", "--to-destination 10.244.1.2:8080"]),
])
def test_dry_run_prints_rules_with_allocated_addresses(capsys: pytest.CaptureFixture[str], manifests: Path,
                                                       mode: str, expect: list[str]) -> None:
    code, out, _ = run(capsys, "--mode", mode, "--manifests", str(manifests), "--dry-run", "--node-name", "n1")
    assert code == 0
    for text in expect:
        assert text in out, text


def test_service_cidr_moves_cluster_ips(capsys: pytest.CaptureFixture[str], manifests: Path) -> None:
    code, out, _ = run(capsys, "--mode", "nftables", "--manifests", str(manifests), "--dry-run",
                       "--service-cidr", "172.30.0.0/16")
    assert code == 0 and "172.30.0.2 . tcp . 80" in out


def test_mode_without_a_backend_says_so(capsys: pytest.CaptureFixture[str], manifests: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(proxy_cmd.BACKEND_FACTORIES, "ipvs", None)
    code, out, err = run(capsys, "--mode", "ipvs", "--manifests", str(manifests), "--once")
    assert code == 1 and out == ""
    assert "--mode ipvs is not available in this build" in err


def test_missing_tool_is_named(capsys: pytest.CaptureFixture[str], manifests: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_mod.shutil, "which", lambda t: None if t == "iptables-restore" else "/x")
    code, _, err = run(capsys, "--mode", "iptables", "--manifests", str(manifests), "--once")
    assert code == 1 and "iptables-restore" in err and "not installed" in err


def test_missing_capability_is_named(capsys: pytest.CaptureFixture[str], manifests: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_mod.shutil, "which", lambda t: "/usr/sbin/" + t)
    monkeypatch.setattr(backend_mod, "has_cap_net_admin", lambda: False)
    code, _, err = run(capsys, "--mode", "nftables", "--manifests", str(manifests), "--once")
    assert code == 1 and "CAP_NET_ADMIN" in err


def test_kubeconfig_without_the_kube_source_says_so(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ingressctl.sources.kube", None)
    code, _, err = run(capsys, "--mode", "nftables", "--kubeconfig", str(tmp_path / "k"), "--dry-run")
    assert code == 1 and "ingressctl.sources.kube" in err


@pytest.mark.parametrize("flags,message", [
    (["--cluster-cidr", "10.0.0.0/8,10.1.0.0/16"], "one CIDR"),
    (["--nodeport-addresses", "banana"], "not a CIDR"),
    (["--chain-prefix", "KUBE-PROXY-X"], "--chain-prefix"),
    (["--sync-period", "0"], "--sync-period"),
])
def test_bad_flags(capsys: pytest.CaptureFixture[str], manifests: Path, flags: list[str], message: str) -> None:
    code, _, err = run(capsys, "--manifests", str(manifests), "--dry-run", *flags)
    assert code == 1 and message in err


def test_missing_manifest_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--manifests", str(tmp_path / "nope"), "--dry-run")
    assert code == 1 and "does not exist" in err
