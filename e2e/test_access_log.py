"""e2e: the nginx access log as ingress-nginx users configure it: `log-format-escape-json`
gives valid JSON for any header value, and the ingress-nginx variables ($namespace,
$ingress_name, $service_name, $service_port, $req_id, ...) exist in every location."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .annotation_kit import ingress, service, started_controller
from .harness import Backends, LocalController

FORMAT = ('{"ua": "$http_user_agent", "ns": "$namespace", "ingress": "$ingress_name", "svc": "$service_name", '
          '"port": "$service_port", "rid": "$req_id", "upstream": "$proxy_upstream_name", '
          '"alt": "$proxy_alternative_upstream_name", "status": "$status"}')
CONFIGMAP = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: ingressctl, namespace: ingress}}
data:
  log-format-escape-json: "true"
  log-format-upstream: '{FORMAT}'
"""


@pytest.fixture(scope="module")
def ctl() -> Iterator[LocalController]:
    b = Backends()
    try:
        yield from started_controller(
            {"configmap.yaml": CONFIGMAP, "svc.yaml": service("web", [port := b.start("web")]),
             "ing.yaml": ingress("site", "log.test", [("/", "Prefix", "web")]),
             "auth.yaml": ingress("guarded", "auth.log.test", [("/", "Prefix", "web")],
                                  {"auth-url": f"http://127.0.0.1:{port}/auth", "mirror-target":
                                   f"http://127.0.0.1:{port}$request_uri"})},
            lambda c: c.get("log.test").status == 200, extra_args=["--configmap", "ingress/ingressctl"])
    finally:
        b.stop()


def _entries(ctl: LocalController) -> list[dict[str, str]]:
    return [json.loads(line) for line in ctl.log().splitlines() if line.startswith('{"ua"')]


def test_escape_json_keeps_every_line_valid_json_with_the_ingress_nginx_variables(ctl: LocalController) -> None:
    ua = 'evil "agent" \\ with\ttabs'
    assert ctl.get("log.test", "/x", headers={"User-Agent": ua, "X-Request-ID": "rid-1"}).status == 200
    ctl.wait_for(lambda: any(e["rid"] == "rid-1" for e in _entries(ctl)), what="the access log line")
    entry = next(e for e in _entries(ctl) if e["rid"] == "rid-1")
    assert entry["ua"] == ua
    assert (entry["ns"], entry["ingress"], entry["svc"], entry["port"]) == ("default", "site", "web", "80")
    assert (entry["upstream"], entry["alt"], entry["status"]) == ("default-web-80", "", "200")


def test_the_variables_exist_for_requests_no_ingress_serves(ctl: LocalController) -> None:
    assert ctl.get("unknown.test", "/", headers={"X-Request-ID": "rid-404"}).status == 404
    ctl.wait_for(lambda: any(e["rid"] == "rid-404" for e in _entries(ctl)), what="the 404's log line")
    entry = next(e for e in _entries(ctl) if e["rid"] == "rid-404")
    assert (entry["ns"], entry["ingress"], entry["status"]) == ("", "", "404")


def test_auth_and_mirror_subrequests_leave_the_upstream_name_alone(ctl: LocalController) -> None:
    """An auth_request or mirror subrequest shares the request's variables and runs the
    server's rewrite directives again: the log (and the request metrics) must still name the
    location's upstream, not the server's "-"."""
    assert ctl.get("auth.log.test", "/", headers={"X-Request-ID": "rid-auth"}).status == 200
    ctl.wait_for(lambda: any(e["rid"] == "rid-auth" and e["ingress"] == "guarded" for e in _entries(ctl)),
                 what="the guarded request's log line")
    entry = next(e for e in _entries(ctl) if e["rid"] == "rid-auth" and e["ingress"] == "guarded")
    assert (entry["upstream"], entry["status"]) == ("default-web-80", "200")
