"""`ingressctl proxy` as a real process in the node namespace, fed by a manifest directory.

Checks what the in-process behaviour table cannot: the command wiring, the file watch ->
partial sync path (an endpoint removed from a file stops getting connections), /healthz
and /metrics on the status port, SIGTERM, `--once` and `--cleanup`.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .netns import Topology, create_topology, tcp_ask

pytestmark = pytest.mark.netns
STATUS = "http://127.0.0.1:10256"


def manifests(pods: list[str]) -> str:
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
              "metadata": {"name": "web-1", "namespace": "default",
                           "labels": {"kubernetes.io/service-name": "web"}},
              "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
              "endpoints": [{"addresses": [f"10.244.{p[-1]}.2"], "nodeName": "n1"} for p in pods]}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    return yaml.safe_dump_all([svc, slice_])


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with create_topology(3, prefix=f"icp{__import__('os').getpid()}c") as t:
        t.start_echo()
        yield t


def proxy_argv(topo: Topology, mode: str, directory: Path, *extra: str) -> list[str]:
    return ["ip", "netns", "exec", topo.node.name, sys.executable, "-m", "ingressctl.cli", "proxy",
            "--mode", mode, "--manifests", str(directory), "--node-name", "n1",
            "--cluster-cidr", "10.244.0.0/16", *extra]


def http_get(topo: Topology, path: str) -> tuple[int, str]:
    def get() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(STATUS + path, timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)
    return topo.node.run(get)


def pods_seen(topo: Topology, n: int = 30) -> collections.Counter[str]:
    return collections.Counter(a.split()[0] for a in topo.client.run(
        lambda: [tcp_ask("10.96.0.10", 80) for _ in range(n)]))


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} not within {timeout}s")


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_daemon_follows_the_manifest_directory(topo: Topology, tmp_path: Path, mode: str) -> None:
    (tmp_path / "web.yaml").write_text(manifests(["pod1", "pod2", "pod3"]))
    proc = subprocess.Popen(proxy_argv(topo, mode, tmp_path, "--min-sync-period", "0.2", "--sync-period", "5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: http_get(topo, "/healthz")[0] == 200, 10, "/healthz 200")
        assert set(pods_seen(topo, 45)) == {"pod1", "pod2", "pod3"}
        (tmp_path / "web.yaml").write_text(manifests(["pod1", "pod2"]))
        wait_for(lambda: "pod3" not in pods_seen(topo), 10, "pod3 removed from the rules")
        assert set(pods_seen(topo, 45)) == {"pod1", "pod2"}
        code, metrics = http_get(topo, "/metrics")
        assert code == 200
        assert 'ingressctl_proxy_syncs_total{kind="partial",result="ok"}' in metrics
        assert "ingressctl_proxy_last_successful_sync_timestamp_seconds" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(proxy_argv(topo, mode, tmp_path, "--cleanup"), capture_output=True, check=False)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_once_then_cleanup(topo: Topology, tmp_path: Path, mode: str) -> None:
    (tmp_path / "web.yaml").write_text(manifests(["pod2"]))
    once = subprocess.run(proxy_argv(topo, mode, tmp_path, "--once"), capture_output=True, text=True,
                          timeout=60, check=False)
    assert once.returncode == 0, once.stderr
    assert set(pods_seen(topo, 5)) == {"pod2"}
    cleanup = subprocess.run(proxy_argv(topo, mode, tmp_path, "--cleanup"), capture_output=True, text=True,
                             timeout=60, check=False)
    assert cleanup.returncode == 0, cleanup.stderr
    with pytest.raises(TimeoutError):  # no rules: the uplink sink swallows the SYN
        topo.client.run(lambda: tcp_ask("10.96.0.10", 80, timeout=1.0))
    assert "ICP" not in topo.node.exec("iptables-save")
    assert "ingressctl" not in topo.node.exec("nft", "list", "tables")
