"""`ingressctl migrate to-gateway`: the conversion and its proof (explain over both builds)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingressctl.cli import main

HERE = Path(__file__).parent / "migrate"
A = "nginx.ingress.kubernetes.io/"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    shutil.copy(HERE / "to-gateway.yaml", tmp_path / "all.yaml")
    shutil.copy(HERE / "to-gateway-tls.yaml", tmp_path / "tls.yaml")
    return tmp_path


def _run(world: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["migrate", "to-gateway", "--manifests", str(world), *extra])
    out = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out.out) if d], out.err


def _by(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_conversion_is_proven_with_no_difference(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, objs, err = _run(world, capsys)
    assert code == 0, err
    assert "5 Ingress(es) converted" in err and "0 routed differently" in err
    assert "shop/regex: not converted (no Gateway API equivalent here): proxy-body-size" in err
    gw = _by(objs, "Gateway", "ingressctl")
    assert [(x["name"], x["protocol"], x["port"]) for x in gw["spec"]["listeners"]] == [
        ("http", "HTTP", 8080), ("https-0", "HTTPS", 8443)]
    assert gw["spec"]["listeners"][1]["tls"]["certificateRefs"] == [{"name": "shop-tls", "namespace": "shop"}]
    grant = _by(objs, "ReferenceGrant", "ingressctl-reads-secrets")
    assert grant["metadata"]["namespace"] == "shop"  # the Gateway's namespace may read shop's Secrets
    shop = _by(objs, "HTTPRoute", "shop")["spec"]["rules"]
    canary = [r for r in shop if r["matches"][0].get("headers")]
    assert [r["matches"][0]["headers"][0]["value"] for r in canary] == ["(?i:never)", "(?i:always)"]
    weighted = next(r for r in shop if len(r.get("backendRefs", [])) == 2)
    assert [(b["name"], b["weight"]) for b in weighted["backendRefs"]] == [("api", 90), ("api-canary", 10)]
    redirect = _by(objs, "HTTPRoute", "secure-to-https")["spec"]["rules"][0]["filters"][0]["requestRedirect"]
    assert redirect == {"scheme": "https", "statusCode": 308, "port": 8443}  # as ingress-nginx's ssl-redirect
    assert _by(objs, "HTTPRoute", "regex")["spec"]["rules"][0]["matches"][0]["path"] == {
        "type": "RegularExpression", "value": "/(?i:v[0-9]+/items).*"}


def test_the_proof_finds_a_request_routed_differently(world: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A conversion bug (the canary's 'never' rule forgotten) must show: with X-Canary: never the
    Ingresses send everything to the main backend, the routes would split by weight."""
    from ingressctl.migrate import to_gateway
    real = to_gateway._Converter.canary_rules

    def forgetful(self: Any, *args: Any) -> Any:
        extra, weighted = real(self, *args)
        return [r for r in extra if "never" not in str(r)], weighted
    monkeypatch.setattr(to_gateway._Converter, "canary_rules", forgetful)
    code, _, err = _run(world, capsys)
    assert code == 1
    assert "differs: GET http://shop.example.com/api [X-Canary: never]: Ingress -> Service shop/api; " \
           "Gateway -> split 10% to shop/api-canary:8080, 90% to shop/api:8080" in err, err


def test_what_the_routes_cannot_serve_is_an_error(world: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ingressctl.migrate import to_gateway
    monkeypatch.setattr(to_gateway, "_match_path", lambda p, regex: {"type": "RegularExpression", "value": "x("})
    code, _, err = _run(world, capsys)
    assert code == 1 and "error: the generated HTTPRoute shop/shop is not served: UnsupportedValue" in err


def test_output_file_and_names(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gateway.yaml"
    code, printed, _ = _run(world, capsys, "--gateway-name", "edge", "--gateway-namespace", "shop",
                            "--gateway-class", "mine", "-o", str(out))
    objs = list(yaml.safe_load_all(out.read_text()))
    assert code == 0 and printed == []
    assert _by(objs, "GatewayClass", "mine")["spec"]["controllerName"] == "ingressctl.io/gateway-controller"
    assert _by(objs, "HTTPRoute", "shop")["spec"]["parentRefs"] == [
        {"name": "edge", "namespace": "shop", "sectionName": "http"}]
    assert not [o for o in objs if o["kind"] == "ReferenceGrant"]  # the Secrets are in the Gateway's namespace
