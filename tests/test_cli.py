"""The command line: one clear line and a non-zero exit for bad input; render and validate."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from ingressctl.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, message", [
    (["run", "--manifests", "/nonexistent"], "ingressctl run: --manifests /nonexistent: not a directory"),
    (["render", "--manifests", "/nonexistent"], "ingressctl render: --manifests /nonexistent: not a directory"),
    (["run", "--manifests", ".", "--http-port", "70000"], "ingressctl run: --http-port 70000 is not a TCP port"),
    (["render", "--manifests", str(ROOT / "examples/quickstart"), "--service-cidr", "banana"],
     "ingressctl render: --service-cidr: "),
])
def test_bad_input_is_one_line_and_exit_1(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def test_help_names_every_documented_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "render", "validate"):
        assert command in out


def test_render_prints_config_and_writes_keys_0600(tmp_path, capsys):
    assert main(["render", "--manifests", str(ROOT / "examples/quickstart"), "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "server_name web.example.com;" in out and "server_name secure.example.com;" in out
    keys = list((tmp_path / "nginx" / "certs").glob("demo-secure-example-tls-*.pem"))
    assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    assert str(keys[0]) in out


def test_validate_reports_and_exits_1(tmp_path, capsys):
    shutil.copytree(ROOT / "examples/quickstart", tmp_path / "m")
    assert main(["validate", "--manifests", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    (tmp_path / "m" / "bad.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad, namespace: demo}\n"
        "spec:\n  ingressClassName: nginx\n  rules:\n  - host: bad.example.com\n    http:\n      paths:\n"
        "      - {path: '/x;}', pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n")
    assert main(["validate", "--manifests", str(tmp_path / "m")]) == 1
    out = capsys.readouterr().out
    assert "demo/bad" in out and "/x;}" in out


def test_validate_checks_httproutes_too(tmp_path, capsys):
    shutil.copytree(ROOT / "examples/gateway", tmp_path / "m")
    assert main(["validate", "--manifests", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    (tmp_path / "m" / "bad.yaml").write_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad, namespace: demo}\n"
        "spec:\n  parentRefs: [{name: web, namespace: default}]\n  rules:\n"
        "  - matches: [{headers: [{type: RegularExpression, name: x, value: 'a\";b'}]}]\n"
        "    backendRefs: [{name: web, port: 80}]\n")
    assert main(["validate", "--manifests", str(tmp_path / "m")]) == 1
    out = capsys.readouterr().out
    assert "HTTPRoute demo/bad" in out and "nginx could read as syntax" in out


# -- issue 12 §5: the command line tells the truth --------------------------------------------

def _nginx_t(prefix: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    from .test_golden import nginx_binary

    return subprocess.run([nginx_binary(), "-t", "-q", "-p", str(prefix), "-c", str(conf)],
                          capture_output=True, text=True, timeout=60)


def test_render_leaves_the_state_dir_ready_for_nginx_t(tmp_path, capsys):
    state = tmp_path / "state"
    assert main(["render", "--manifests", str(ROOT / "examples/quickstart"), "--state-dir", str(state),
                 "--dynamic-endpoints", "on"]) == 0
    conf = tmp_path / "nginx.conf"
    conf.write_text(capsys.readouterr().out)
    r = _nginx_t(state / "nginx", conf)
    assert r.returncode == 0, r.stderr


def test_render_without_a_state_dir_uses_a_fresh_one_not_a_live_instances(tmp_path, capsys, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["render", "--manifests", str(ROOT / "examples/quickstart")]) == 0
    captured = capsys.readouterr()
    assert "/ingressctl-8080/" not in captured.out
    state = next(tmp_path.glob("ingressctl-render-*"))
    assert str(state) in captured.err  # where it wrote, and how to test it
    conf = tmp_path / "nginx.conf"
    conf.write_text(captured.out)
    assert _nginx_t(state / "nginx", conf).returncode == 0


def test_version_and_verbose_after_the_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("ingressctl ")
    assert main(["render", "-v", "--manifests", "/nonexistent"]) == 1  # -v is accepted after the command


def test_validate_reads_a_file_and_stdin_and_prints_each_warning_once(tmp_path, capsys, monkeypatch):
    import io

    text = (ROOT / "examples/quickstart/ingress.yaml").read_text().replace(
        "metadata:", "metadata:\n  annotations: {nginx.ingress.kubernetes.io/unknown-thing: \"x\"}", 1)
    f = tmp_path / "one.yaml"
    f.write_text("\n---\n".join([text, (ROOT / "examples/quickstart/services.yaml").read_text(),
                                  (ROOT / "examples/quickstart/ingressclass.yaml").read_text()]))
    assert main(["validate", "-f", str(f)]) == 0
    out = capsys.readouterr().out
    assert out.count("unknown-thing") == 1, out
    monkeypatch.setattr("sys.stdin", io.StringIO(f.read_text()))
    assert main(["validate", "-f", "-"]) == 0
    assert "unknown-thing" in capsys.readouterr().out


def test_validate_reports_configmap_problems(tmp_path, capsys):
    shutil.copytree(ROOT / "examples/quickstart", tmp_path / "m")
    (tmp_path / "m" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ctl, namespace: ingress}\n"
        "data: {proxy-body-size: banana, no-such-key: x}\n")
    assert main(["validate", "--manifests", str(tmp_path / "m"), "--configmap", "ingress/ctl"]) == 1
    out = capsys.readouterr().out
    assert "error: ConfigMap ingress/ctl: InvalidConfigMapValue: key proxy-body-size='banana'" in out
    assert "warning: ConfigMap ingress/ctl: UnknownConfigMapKey: key no-such-key='x'" in out


def test_json_logs_are_one_object_per_line_with_the_objects_fields(tmp_path, capsys):
    import json
    import logging

    from ingressctl.cli import _verbosity
    from ingressctl.controller import Controller, ControllerOptions
    from ingressctl.logs import configure
    from ingressctl.store import Store

    from .factory import ingress, ingress_class, path

    assert _verbosity(["render", "--log-format", "json", "-vv", "--manifests", "x"]) == (
        2, ["--log-format", "json", "render", "--manifests", "x"])
    store = Store()
    store.replace(None, [ingress_class(), ingress("bad", [("bad.test", [path("/x;")])], ns="demo")])
    ctl = Controller(store, ControllerOptions(state_dir=tmp_path))
    configure(logging.INFO, "json")
    try:
        ctl._record_problems(ctl.build(store.snapshot()))
        logging.getLogger("ingressctl.test").info('a "quoted" message')
    finally:
        configure(logging.WARNING, "text")
    err = capsys.readouterr().err.splitlines()
    lines = [json.loads(line) for line in err]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    bad = next(d for d in lines if d.get("name") == "bad")
    assert (bad["kind"], bad["namespace"], bad["reason"], bad["level"]) == ("Ingress", "demo", "InvalidIngress",
                                                                         "WARNING")
    assert lines[-1]["message"] == 'a "quoted" message'


def test_one_shot_tools_do_not_log_each_manifest_read():
    """`run` logs each directory read (its time is part of a change's); validate, render and
    the other one-shot tools print their answer only."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "ingressctl.cli", "validate", "--manifests",
                        str(ROOT / "examples/quickstart")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "manifests read" not in r.stderr + r.stdout
