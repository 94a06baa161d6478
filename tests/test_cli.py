"""The command line: one clear line and a non-zero exit for bad input; render and validate."""

from __future__ import annotations

import shutil
import stat
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
