"""e2e: one instance per state dir, a busy port refused at start, nginx's own errors, and a
/readyz that reports a configuration that cannot go live (issue 11, item 8)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .cluster import ApiServer, ClusterController, api, cluster_controllers, start_controller
from .harness import INGRESS_CLASS, INGRESSCTL, ROOT, LocalController, free_port, wait_until

__all__ = ["api", "cluster_controllers"]  # fixtures


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """`ingressctl run` that is expected to refuse to start (bounded: it must not keep running)."""
    return subprocess.run([*INGRESSCTL, "run", *args, "--shutdown-grace-period", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=20)


def test_a_second_instance_on_the_same_state_dir_refuses_with_one_line(tmp_path: Path):
    first = LocalController(tmp_path)
    first.write("00-class.yaml", INGRESS_CLASS)
    first.start()
    try:
        r = _run("--manifests", str(first.manifests), "--state-dir", str(first.state_dir),
                 "--http-port", str(free_port()), "--https-port", str(free_port()),
                 "--status-port", str(free_port()))
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "is in use by another ingressctl" in lines[0], r.stderr
        assert first.status("/readyz")[0] == 200
    finally:
        first.stop()


def test_cluster_mode_refuses_a_second_instance_on_the_same_state_dir(
        tmp_path: Path, api: ApiServer, cluster_controllers: list[ClusterController]):
    first = start_controller(cluster_controllers, tmp_path, api, "r1")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    r = subprocess.run([*INGRESSCTL, "controller", "--kubeconfig", str(first.kubeconfig),
                        "--state-dir", str(first.state_dir), "--listen-address", "127.0.0.1",
                        "--http-port", str(free_port()), "--https-port", str(free_port()),
                        "--status-port", str(free_port()), "--status-address", "127.0.0.1",
                        "--election-namespace", "ingressctl", "--shutdown-grace-period", "0"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.strip().splitlines() if " WARNING " not in ln]  # (a 0700 pytest tmp dir)
    assert len(lines) == 1 and "is in use by another ingressctl" in lines[0], r.stderr
    assert first.status("/readyz")[0] == 200


def test_a_port_in_use_at_start_is_named_and_exits_1(tmp_path: Path):
    (tmp_path / "m").mkdir()
    state = Path(tempfile.mkdtemp(prefix="ingressctl-e2e-"))
    state.chmod(0o755)  # nginx workers may traverse it: no warning about that in the output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _run("--manifests", str(tmp_path / "m"), "--state-dir", str(state),
                 "--http-port", str(port), "--https-port", str(free_port()), "--status-port", str(free_port()))
    shutil.rmtree(state, ignore_errors=True)
    assert r.returncode == 1
    assert r.stderr.strip() == f"ingressctl run: port {port} on 127.0.0.1 is in use", r.stderr


BAD_SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {log-format-upstream: "$remote_addr $no_such_variable"}
"""


def test_readyz_reports_a_configuration_that_stays_stale(tmp_path: Path):
    ctl = LocalController(tmp_path, extra_args=["--configmap", "default/settings", "--stale-after", "1"])
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.start()
    try:
        ctl.write("settings.yaml", BAD_SETTINGS)  # nginx -t refuses it whatever the Ingresses
        wait_until(lambda: ctl.status("/readyz")[0] == 503, 10, "/readyz to report the stale configuration")
        code, body = ctl.status("/readyz")
        assert "configuration stale" in body and "no_such_variable" in body, body
        ctl.remove("settings.yaml")
        wait_until(lambda: ctl.status("/readyz")[0] == 200, 10, "/readyz once the configuration goes live")
    finally:
        ctl.stop()


def test_a_state_dir_the_workers_cannot_reach_is_refused_with_the_reason(tmp_path: Path):
    assert os.geteuid() == 0, "e2e runs as root (nginx workers run as nobody)"
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (tmp_path / "m").mkdir()
    r = _run("--manifests", str(tmp_path / "m"), "--state-dir", str(closed / "state"),
             "--http-port", str(free_port()), "--https-port", str(free_port()), "--status-port", str(free_port()))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot traverse" in lines[0] and str(closed) in lines[0], r.stderr


def test_a_state_dir_that_cannot_be_written_is_one_line(tmp_path: Path):
    (tmp_path / "m").mkdir()
    blocker = Path(tempfile.mkdtemp(prefix="ingressctl-e2e-")) / "file"
    blocker.write_text("not a directory")
    try:
        r = _run("--manifests", str(tmp_path / "m"), "--state-dir", str(blocker),
                 "--http-port", str(free_port()), "--https-port", str(free_port()), "--status-port", str(free_port()))
    finally:
        shutil.rmtree(blocker.parent, ignore_errors=True)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "--state-dir" in r.stderr, r.stderr
