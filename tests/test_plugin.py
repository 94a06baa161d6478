"""The kubectl plugin's dispatch and the status port's loopback-only debug pages."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from ingressctl.debug import backends_table, debug_pages
from ingressctl.health import StatusServer, _loopback
from ingressctl.plugin import main as plugin_main
from tests.factory import endpoint_slice, ingress, ingress_class, path, run_build, service


@pytest.mark.parametrize("address,ok", [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True),
                                        ("::ffff:127.0.0.1", True), ("10.244.1.7", False), ("::ffff:10.0.0.1", False),
                                        ("fe80::1%eth0", False), ("bogus", False)])
def test_debug_pages_only_for_loopback(address: str, ok: bool) -> None:
    assert _loopback(address) is ok


def test_backends_table_lists_live_upstreams() -> None:
    model = run_build(ingress_class(), service("web"), endpoint_slice("web", ["10.0.0.1", "10.0.0.2"]),
                      ingress("a", [("x.io", [path("/", "web")])])).model
    assert backends_table(model) == [{"upstream": "default-web-80", "service": "default/web", "port": 80,
                                      "endpoints": ["10.0.0.1:8080", "10.0.0.2:8080"]}]
    assert backends_table(None) == []


def test_status_port_serves_the_pages(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\n")
    server = StatusServer("127.0.0.1", 0, lambda: (True, "ok"), lambda: (True, "ok"),
                          pages=debug_pages(lambda: None, conf)).start()
    try:
        for page, body in (("/debug/nginx.conf", "events {}\n"), ("/debug/backends", "[]\n")):
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            c.request("GET", page)
            r = c.getresponse()
            assert (r.status, r.read().decode()) == (200, body)
            c.close()
        conf.unlink()
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        c.request("GET", "/debug/nginx.conf")
        assert c.getresponse().status == 503
    finally:
        server.stop()


def test_plugin_passes_explain_through(capsys: pytest.CaptureFixture[str]) -> None:
    quickstart = str(Path(__file__).resolve().parents[1] / "examples" / "quickstart")
    assert plugin_main(["explain", "--manifests", quickstart, "http://web.example.com/", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ingress"] == "demo/web"


def test_plugin_usage() -> None:
    assert plugin_main([]) == 2
    with pytest.raises(SystemExit):
        plugin_main(["nonsense"])
