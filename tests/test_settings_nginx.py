"""ConfigMap keys: every accepted value renders to what the real `nginx -t` accepts, refused
values keep the default, and docs/configmap.md is generated from the registry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ingressctl.ingress.configmap_reference import render_reference
from ingressctl.ingress.settings import KEYS, Settings, parse_settings
from ingressctl.nginx.defaultcert import ensure_default_certificate
from ingressctl.nginx.render import RenderContext, Renderer

from .factory import endpoint_slice, ingress, ingress_class, path, run_build, service
from .test_golden import nginx_binary

DOC = Path(__file__).resolve().parents[1] / "docs" / "configmap.md"

ACCEPTED = {
    "ssl-protocols": ["TLSv1.2", "TLSv1.3", "TLSv1.2 TLSv1.3", "TLSv1 TLSv1.1 TLSv1.2"],
    "ssl-ciphers": ["HIGH:!aNULL:!MD5", "ECDHE-RSA-AES128-GCM-SHA256"],
    "ssl-prefer-server-ciphers": ["true", "false"],
    "ssl-session-cache": ["true", "false"],
    "ssl-session-cache-size": ["64k", "10m", "100m"],
    "ssl-session-timeout": ["1s", "10m", "1d"],
    "ssl-session-tickets": ["true", "false"],
    "ssl-ecdh-curve": ["auto", "prime256v1", "X25519:prime256v1:secp384r1"],
    "use-gzip": ["true", "false"],
    "gzip-level": ["1", "9"],
    "gzip-min-length": ["0", "256", "1048576"],
    "gzip-types": ["text/css", "application/json text/plain image/svg+xml", "text/*"],
    "error-log-level": ["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"],
    "large-client-header-buffers": ["4 8k", "2 1k", "8 16k"],
    "client-header-buffer-size": ["1", "1k", "64k"],
    "client-body-timeout": ["1s", "60s"],
    "client-header-timeout": ["1s", "60s"],
    "keep-alive-requests": ["1", "1000"],
    "max-worker-connections": ["64", "16384"],
    "ignore-invalid-headers": ["true", "false"],
    "enable-underscores-in-headers": ["true", "false"],
    "limit-req-status-code": ["429", "503"],
    "limit-conn-status-code": ["429", "503"],
    "upstream-keepalive-timeout": ["1s", "60s"],
    "upstream-keepalive-requests": ["1", "10000"],
    "proxy-buffering": ["on", "off"],
    "proxy-buffer-size": ["1k", "4k", "1m"],
    "proxy-buffers-number": ["4", "8", "512"],
    "proxy-next-upstream": ["error timeout", "off", "error timeout http_502 http_503 non_idempotent"],
    "proxy-next-upstream-tries": ["0", "3", "100"],
    "proxy-next-upstream-timeout": ["0", "10s"],
    "http-redirect-code": ["301", "302", "307", "308"],
    "use-port-in-redirects": ["true", "false"],
    "forwarded-for-header": ["X-Forwarded-For", "CF-Connecting-IP"],
    "proxy-real-ip-cidr": ["10.0.0.0/8", "10.0.0.0/8,192.168.0.0/16"],
    "enable-real-ip": ["true"],
    "compute-full-forwarded-for": ["true"],
    "use-proxy-protocol": ["true"],
    "no-tls-redirect-locations": ["/.well-known/acme-challenge", "/a,/b"],
    "hsts-preload": ["true"],
    "log-format-escape-json": ["true"],
    "disable-access-log": ["true", "false"],
    "bind-address": ["127.0.0.1", "127.0.0.1,::1", ""],
    "global-allowed-response-headers": ["X-Frame-Options,Content-Security-Policy", ""],
    "custom-http-errors": ["404,503", "500", ""],
    "log-format-stream": ["$remote_addr $protocol $status", "[$time_local] $upstream_addr $session_time"],
    "hide-headers": ["X-Powered-By", "X-Powered-By, Server,X-AspNet-Version", ""],
    "allow-backend-server-header": ["true", "false"],
    "add-headers": ["ingress/headers", ""],
    "proxy-set-headers": ["ingress/headers", ""],
    "block-cidrs": ["10.0.0.0/8", "192.0.2.1, 2001:db8::/32", ""],
    "block-user-agents": ["EvilBot/1.0", "~*bot, ~^curl/7\\., Mozilla/5.0 (compatible; X)", ""],
    "block-referers": ["http://spam.example/", "~*spam\\.example", ""],
    "server-name-hash-bucket-size": ["512", "1024"],
    "variables-hash-bucket-size": ["256", "512"],
    "map-hash-bucket-size": ["512", "2048"],
}
# The ConfigMap add-headers / proxy-set-headers name in the tables above.
HEADERS = {"X-Frame-Options": "DENY", "X-Upstream": "$proxy_upstream_name", "X-Start": "t=${msec}", "X-Empty": "",
           "X-Text": "a b, c=d; e/f (g) {h} #i"}


def _lookup(ns: str, name: str) -> dict[str, str] | None:
    return HEADERS if (ns, name) == ("ingress", "headers") else None

REFUSED = {
    "ssl-protocols": ["SSLv3", "TLSv1.2; evil", ""],
    "ssl-ciphers": ["HIGH; include /etc/passwd", "a b"],
    "ssl-ecdh-curve": ["prime256v1;x", "a b"],
    "gzip-level": ["0", "10"],
    "gzip-types": ["text/css;", "nope"],
    "error-log-level": ["verbose"],
    "large-client-header-buffers": ["4", "4 8k;", "0 8k", "4 10m"],
    "client-header-buffer-size": ["0", "2m"],
    "max-worker-connections": ["1", "x"],
    "limit-req-status-code": ["200", "600"],
    "proxy-buffering": ["yes"],
    "proxy-buffers-number": ["0", "2", "3", "513"],  # nginx: busy buffers (2 x size) < all but one
    "ssl-session-cache-size": ["1k", "32k"],  # nginx: "too small"
    "proxy-next-upstream": ["error; evil"],
    "http-redirect-code": ["300", "200"],
    "log-format-stream": ["$request_uri", "$remote_addr ${host}", "a ' b"],
    "hide-headers": ["X Powered", "X-A;evil"],
    "bind-address": ["localhost", "10.0.0.0/8", "127.0.0.1;"],
    "custom-http-errors": ["499", "200", "x"],
    "add-headers": ["headers", "ingress/missing", "ingress/Bad_Name"],
    "proxy-set-headers": ["a/b/c"],
    "block-cidrs": ["10.0.0.0/33", "evil;"],
    "block-user-agents": ['a"b', "~(a+)+$x", "$http_host", "~a b"],
    "block-referers": ["~a{;}"],
    "server-name-hash-bucket-size": ["64", "x"],
    "variables-hash-bucket-size": ["128"],
    "map-hash-bucket-size": ["256"],
}


def _nginx_t(settings: Settings, tmp_path: Path) -> tuple[int, str]:
    result = run_build(ingress_class(), service(), endpoint_slice(), ingress("a", [("a.test", [path("/")])]),
                       settings=settings)
    prefix = tmp_path / "nginx"
    for d in ("tmp", "logs", "certs"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    ensure_default_certificate(prefix / "certs" / "default.pem")
    conf = prefix / "nginx.conf"
    conf.write_text(Renderer().render(result.model, RenderContext(prefix=str(prefix), listen=("127.0.0.1:",))))
    r = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(prefix), "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr


CASES = [(k, val) for k, vals in ACCEPTED.items() for val in vals]


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={val}" for k, val in CASES])
def test_every_accepted_value_passes_the_real_nginx_t(key: str, value: str, tmp_path: Path) -> None:
    settings, problems = parse_settings({key: value}, _lookup)
    assert not problems, problems
    code, err = _nginx_t(settings, tmp_path)
    assert code == 0, err


BAD = [(k, val) for k, vals in REFUSED.items() for val in vals]


@pytest.mark.parametrize(("key", "value"), BAD, ids=[f"{k}={val}" for k, val in BAD])
def test_refused_values_keep_the_default_and_are_reported(key: str, value: str) -> None:
    settings, problems = parse_settings({key: value}, _lookup)
    assert problems and settings == Settings()


def test_every_key_has_accepted_values_tested_or_existed_before() -> None:
    older = {"proxy-body-size", "proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout",
             "ssl-redirect", "hsts", "hsts-max-age", "hsts-include-subdomains", "worker-processes",
             "worker-shutdown-timeout", "max-draining-generations", "allow-snippet-annotations",
             "log-format-upstream", "use-forwarded-headers", "server-tokens", "upstream-keepalive-connections",
             "keep-alive", "use-http2", "enable-access-log"}  # tested by goldens and e2e
    assert set(KEYS) - older <= set(ACCEPTED), sorted(set(KEYS) - older - set(ACCEPTED))


@pytest.mark.parametrize("value", ['a"b', "a\\b", "$host_x", "${secret}", "$", "x\n", "x" * 1025])
def test_a_header_value_is_left_out_with_a_reason_and_the_rest_kept(value: str) -> None:
    settings, problems = parse_settings({"proxy-set-headers": "ingress/h"},
                                        lambda ns, name: {"X-Good": "ok $host", "X-Bad": value})
    assert settings.proxy_set_headers == (("X-Good", "ok $host"),)
    assert len(problems) == 1 and "X-Bad" in problems[0].reason and problems[0].event_reason == "InvalidConfigMapValue"


def test_unknown_keys_are_reported_under_their_own_reason() -> None:
    _, problems = parse_settings({"no-such-key": "1", "gzip-level": "10"})
    assert sorted(p.event_reason for p in problems) == ["InvalidConfigMapValue", "UnknownConfigMapKey"]


def test_headers_from_a_configmap_are_bounded() -> None:
    settings, problems = parse_settings({"add-headers": "ingress/h"},
                                        lambda ns, name: {f"X-H{i:03}": "v" for i in range(150)})
    assert len(settings.add_headers) == 100 and len(problems) == 1


def test_configmap_reference_is_up_to_date() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/configmap.md is stale: run python -m ingressctl.ingress.configmap_reference > docs/configmap.md")
