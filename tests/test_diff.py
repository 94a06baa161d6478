"""`ingressctl diff`: route changes from the two models, the nginx.conf diff, the webhook's
verdict, and the exit code; plus the pure route table difference."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingressctl.cli import main
from ingressctl.explain.routes import diff_routes
from tests.factory import endpoint_slice, ingress, ingress_class, path, run_build, service

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
WEB = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: demo, creationTimestamp: "2026-01-01T00:00:00Z", annotations: {annotations}}}
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http:
      paths:
{paths}
  - host: "*.apps.example.com"
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 8080}}}}}}}}
"""
ROOT_PATH = "      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}"
API_PATH = "      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}"


def _file(tmp_path: Path, paths: list[str], annotations: str = "{}") -> str:
    f = tmp_path / "change.yaml"
    f.write_text(WEB.format(paths="\n".join(paths), annotations=annotations))
    return str(f)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["diff", "--manifests", str(QUICKSTART), "--state-dir", "/tmp/ingressctl-diff-test", *argv])
    return code, capsys.readouterr().out


def test_applying_the_same_objects_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, _file(tmp_path, [ROOT_PATH, API_PATH]))
    assert code == 0
    assert out.splitlines()[:3] == ["routes: no change", "", "nginx.conf: no change"]
    assert "Ingress demo/web: allowed" in out


def test_a_removed_path_and_a_changed_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    moved = "      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}"
    code, out = run(capsys, "-f", _file(tmp_path, [moved]))
    assert code == 1
    routes = out.split("\n\n")[0].splitlines()
    assert routes == [
        "routes:",
        "  ~ web.example.com /: demo/web:80 (Ingress demo/web) => demo/api:8080 (Ingress demo/web)",
        "  - web.example.com /api/ -> demo/api:8080 (Ingress demo/web)",
        "  - web.example.com = /api -> demo/api:8080 (Ingress demo/web)",
    ]
    assert '-        location "/api/" {' in out and "+++ proposed" in out


def test_a_refused_change_is_named_with_the_webhooks_reason(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, _file(tmp_path, [ROOT_PATH, API_PATH],
                                  '{"nginx.ingress.kubernetes.io/proxy-body-size": "lots"}'))
    assert code == 1
    assert "  Ingress demo/web: refused: InvalidAnnotation: annotation nginx.ingress.kubernetes.io/proxy-body-size" in out
    assert "  - web.example.com /api/ -> demo/api:8080 (Ingress demo/web)" in out  # the build leaves it out


def test_without_files_the_live_config_is_compared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["render", "--manifests", str(QUICKSTART), "--state-dir", str(state)]) == 0
    live = capsys.readouterr().out
    (state / "nginx").mkdir(parents=True, exist_ok=True)
    (state / "nginx" / "nginx.conf").write_text(live)
    assert main(["diff", "--manifests", str(QUICKSTART), "--state-dir", str(state)]) == 0
    assert "nginx.conf: no change" in capsys.readouterr().out
    manifests = tmp_path / "m"
    shutil.copytree(QUICKSTART, manifests)
    text = (manifests / "ingress.yaml").read_text().replace("path: /api", "path: /v2")
    (manifests / "ingress.yaml").write_text(text)
    assert main(["diff", "--manifests", str(manifests), "--state-dir", str(state)]) == 1
    out = capsys.readouterr().out
    assert '-        location "/api/" {' in out and '+        location "/v2/" {' in out


def test_missing_live_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--manifests", str(QUICKSTART), "--state-dir", str(tmp_path)]) == 1
    assert "live configuration" in capsys.readouterr().err


@pytest.mark.parametrize("after_paths,expected", [
    ([path("/", "web"), path("/api", "api")], []),
    ([path("/", "web")], ["- x.io /api/ -> default/api:80 (Ingress default/a)",
                          "- x.io = /api -> default/api:80 (Ingress default/a)"]),
    ([path("/", "web"), path("/api", "api"), path("/new", "web", ptype="Exact")],
     ["+ x.io = /new -> default/web:80 (Ingress default/a)"]),
    ([path("/", "api"), path("/api", "api")], ["~ x.io /: default/web:80 (Ingress default/a) => "
                                               "default/api:80 (Ingress default/a)"]),
    ([path("/", "web"), path("/api", "gone")], ["~ x.io /api/: default/api:80 (Ingress default/a) => status 503",
                                                "~ x.io = /api: default/api:80 (Ingress default/a) => status 503"]),
])
def test_route_differences(after_paths: list[dict[str, object]], expected: list[str]) -> None:
    base = [ingress_class(), service("web"), endpoint_slice("web"), service("api"), endpoint_slice("api", ["10.0.0.2"])]
    before = run_build(*base, ingress("a", [("x.io", [path("/", "web"), path("/api", "api")])]))
    after = run_build(*base, ingress("a", [("x.io", after_paths)]))
    assert [str(c) for c in diff_routes(before.model, after.model)] == expected


def test_canary_shows_in_the_route() -> None:
    base = [ingress_class(), service("web"), endpoint_slice("web"), service("new"), endpoint_slice("new", ["10.0.0.3"]),
            ingress("a", [("x.io", [path("/", "web")])])]
    canary = ingress("c", [("x.io", [path("/", "new")])], created="2026-02-01T00:00:00Z",
                     annotations={"nginx.ingress.kubernetes.io/canary": "true",
                                  "nginx.ingress.kubernetes.io/canary-weight": "10"})
    changes = diff_routes(run_build(*base).model, run_build(*base, canary).model)
    assert [str(c) for c in changes] == [
        "~ x.io /: default/web:80 (Ingress default/a) => default/web:80 (Ingress default/a) + canary default/new:80"]


