"""`ingressctl migrate check`: a realistic ingress-nginx export with its golden report, and
tables for the parts (export reading, the class ingress-nginx served, verdicts, exit codes)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingressctl.cli import main
from ingressctl.migrate.check import check
from ingressctl.migrate.export import controller_args, read_export, source_of
from ingressctl.migrate.report import format_text

HERE = Path(__file__).parent / "migrate"
EXPORT = HERE / "export.yaml"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
A = "nginx.ingress.kubernetes.io/"


def _docs(items: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(f"test:{i}", raw) for i, raw in enumerate(items)]


def _export_items() -> list[dict[str, Any]]:
    return list(yaml.safe_load(EXPORT.read_text())["items"])


def test_golden_report(request: pytest.FixtureRequest) -> None:
    export = read_export(_docs(_export_items()))
    text = format_text(check(export, source_of(export), NOW))
    golden = HERE / "expected.txt"
    if request.config.getoption("--update-golden"):
        golden.write_text(text)
    assert text == golden.read_text(), "report differs from tests/migrate/expected.txt (see --update-golden)"


def test_the_export_is_realistic_and_read_without_complaint() -> None:
    items = _export_items()
    export = read_export(_docs(items))
    report = check(export, source_of(export), NOW)
    assert sum(1 for i in items if i["kind"] == "Ingress") >= 30
    annotations = {k[len(A):] for i in items if i["kind"] == "Ingress" for k in i["metadata"]["annotations"]
                   if k.startswith(A)}
    from ingressctl.ingress.annotations import REGISTRY

    assert set(REGISTRY) <= annotations, set(REGISTRY) - annotations  # every supported annotation
    assert annotations - set(REGISTRY)  # and several ingress-nginx has but ingressctl does not
    assert report.read_problems == ()  # real clusterIPs, a LoadBalancer with nodePorts, other kinds: no complaint
    assert report.other_classes == ("internal/dashboard", "internal/metrics-default")
    assert export.skipped == {}  # a Namespace is read too (Gateway API allowedRoutes selectors)
    assert report.exit_code == 2


def test_controller_flags_name_the_class_and_configmap() -> None:
    export = read_export(_docs(_export_items()))
    src = source_of(export)
    assert (src.classes.controller, src.classes.ingress_class, src.configmap, src.controller) == (
        "k8s.io/ingress-nginx", "nginx", "ingress-nginx/ingress-nginx-controller",
        "Deployment ingress-nginx/ingress-nginx-controller")


@pytest.mark.parametrize("container,flags", [
    ({"image": "registry.k8s.io/ingress-nginx/controller:v1.12.1", "args": ["/nginx-ingress-controller",
      "--configmap=$(POD_NAMESPACE)/cfg", "--enable-ssl-passthrough"]},
     (("--configmap", "edge/cfg"), ("--enable-ssl-passthrough", "true"))),
    ({"image": "mirror.local/controller:1", "command": ["/nginx-ingress-controller", "--ingress-class=public"]},
     (("--ingress-class", "public"),)),
    ({"image": "shop/app:1", "args": ["--ingress-class=x"]}, None),
])
def test_controller_args(container: dict[str, Any], flags: Any) -> None:
    raw = {"kind": "Deployment", "metadata": {"name": "c", "namespace": "edge"},
           "spec": {"template": {"spec": {"containers": [container]}}}}
    got = controller_args(raw)
    assert (got.flags if got else None) == flags


def _ingress(name: str, ann: dict[str, str] | None = None, host: str = "a.example.com", path: str = "/",
             cls: str = "nginx", created: str = "2025-01-01T00:00:00Z", ptype: str = "Prefix") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created, "annotations": ann or {}},
            "spec": {"ingressClassName": cls, "rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": ptype, "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


BASE = [{"kind": "IngressClass", "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}},
        {"kind": "IngressClass", "metadata": {"name": "public"}, "spec": {"controller": "k8s.io/ingress-nginx-public"}},
        {"kind": "Service", "metadata": {"name": "web", "namespace": "ns"},
         "spec": {"clusterIP": "10.0.12.7", "ports": [{"name": "http", "port": 80}]}}]


@pytest.mark.parametrize("ingresses,from_class,verdicts,code", [
    ([_ingress("plain")], "", {"ns/plain": "same"}, 0),
    ([_ingress("sticky", {A + "enable-opentelemetry": "true"})], "", {"ns/sticky": "differs"}, 1),
    ([_ingress("bad", {A + "proxy-body-size": "big"})], "", {"ns/bad": "refused"}, 2),
    ([_ingress("old"), _ingress("new", created="2025-02-01T00:00:00Z")], "", {"ns/old": "same", "ns/new": "refused"}, 2),
    ([_ingress("re", {A + "use-regex": "true"}, path="/v[0-9]", ptype="ImplementationSpecific"), _ingress("pre", path="/guide")], "",
     {"ns/re": "same", "ns/pre": "differs"}, 1),
    ([_ingress("theirs", cls="public"), _ingress("ours")], "public", {"ns/theirs": "same"}, 0),
    ([_ingress("re", {A + "use-regex": "true"}, path="/api")], "", {"ns/re": "differs"}, 1),
    ([_ingress("site"), _ingress("health", host="", path="/healthz")], "", {"ns/site": "same", "ns/health": "differs"}, 1),
])
def test_verdicts_and_exit_codes(ingresses: list[dict[str, Any]], from_class: str, verdicts: dict[str, str],
                                 code: int) -> None:
    export = read_export(_docs(BASE + ingresses))
    report = check(export, source_of(export, from_class), NOW)
    assert {i.ingress: i.verdict for i in report.ingresses} == verdicts
    assert report.exit_code == code


def test_command_reads_stdin_and_prints_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": BASE + [_ingress("sticky", {A + "enable-opentelemetry": "true"})]}
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(listing)))
    code = main(["migrate", "check", "-", "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["exitCode"] == 1
    assert doc["summary"] == {"same": 0, "differs": 1, "refused": 0, "otherClasses": 0}
    assert doc["ingresses"][0]["differences"] == [{"what": "annotation nginx.ingress.kubernetes.io/enable-opentelemetry='true'",
                                                   "ingress-nginx": "applies it",
                                                   "ingressctl": "ignores it (not supported)"}]


def test_an_object_that_cannot_be_read_is_named_and_not_all_same(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump_all(BASE + [_ingress("plain")]))
    (tmp_path / "broken.yaml").write_text("kind: Ingress\nmetadata: [not, a, mapping]\n")
    assert main(["migrate", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "1 Ingress(es): 1 same" in out and "objects that could not be read:" in out and "broken.yaml" in out


def test_command_reads_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "all.yaml").write_text(yaml.safe_dump_all(BASE + [_ingress("plain")]))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    assert main(["migrate", "check", str(tmp_path)]) == 0
    assert "1 Ingress(es): 1 same, 0 differ, 0 refused" in capsys.readouterr().out
