"""Per-annotation parse/validate tables: good values -> typed field, bad values -> refused with reason."""

from __future__ import annotations

from typing import Any

import pytest

from ingressctl.ingress import values as v
from ingressctl.ingress.annotations import PREFIX, REGISTRY, parse_annotations
from ingressctl.ingress.annotations.shapes import MirrorTarget, RewriteTarget, SecretRef

# (annotation, value, field value expected in IngressConfig)
GOOD: list[tuple[str, str, Any]] = [
    ("use-regex", "true", True),
    ("ssl-redirect", "false", False),
    ("force-ssl-redirect", "true", True),
    ("preserve-trailing-slash", "true", True),
    ("rewrite-target", "/$2", RewriteTarget("/$2")),
    ("rewrite-target", "/api/$1/x?y=$2", RewriteTarget("/api/$1/x?y=$2")),
    ("rewrite-target", "https://other.example.com/$1", RewriteTarget("https://other.example.com/$1")),
    ("app-root", "/app", "/app"),
    ("x-forwarded-prefix", "/api", "/api"),
    ("permanent-redirect", "https://new.example.com/x?a=1&b=2", "https://new.example.com/x?a=1&b=2"),
    ("permanent-redirect-code", "308", 308),
    ("temporal-redirect", "http://127.0.0.1:8080/down", "http://127.0.0.1:8080/down"),
    ("from-to-www-redirect", "true", True),
    ("server-alias", "a.example.com, *.b.example.com", ("a.example.com", "*.b.example.com")),
    ("proxy-connect-timeout", "3", v.Duration(3000)),
    ("proxy-read-timeout", "2m", v.Duration(120_000)),
    ("proxy-send-timeout", "500ms", v.Duration(500)),
    ("proxy-body-size", "8m", v.Size(8 << 20)),
    ("backend-protocol", "grpcs", "GRPCS"),
    ("upstream-vhost", "internal.example.com", "internal.example.com"),
    ("upstream-vhost", "internal.example.com:8080", "internal.example.com:8080"),
    ("service-upstream", "true", True),
    ("upstream-hash-by", "$request_uri", "$request_uri"),
    ("upstream-hash-by", "$cookie_session$remote_addr", "$cookie_session$remote_addr"),
    ("load-balance", "least_conn", "least_conn"),
    ("proxy-next-upstream", "error timeout http_502", ("error", "timeout", "http_502")),
    ("proxy-next-upstream-tries", "2", 2),
    ("proxy-next-upstream-timeout", "10s", v.Duration(10_000)),
    ("proxy-buffering", "off", "off"),
    ("proxy-buffer-size", "16k", v.Size(16 << 10)),
    ("proxy-request-buffering", "on", "on"),
    ("client-body-buffer-size", "64k", v.Size(64 << 10)),
    ("proxy-http-version", "1.0", "1.0"),
    ("proxy-buffers-number", "8", 8),
    ("proxy-cookie-path", "/ /app", ("/", "/app")),
    ("proxy-cookie-path", "off", ("off",)),
    ("proxy-cookie-domain", "localhost example.org", ("localhost", "example.org")),
    ("proxy-redirect-from", "http://backend.local/", "http://backend.local/"),
    ("proxy-redirect-from", "off", "off"),
    ("proxy-redirect-to", "/app/", "/app/"),
    ("connection-proxy-header", "keep-alive", "keep-alive"),
    ("limit-rate", "100", 100),
    ("limit-rate-after", "1024", 1024),
    ("enable-access-log", "false", False),
    ("whitelist-source-range", "10.0.0.0/8,192.168.1.1", ("10.0.0.0/8", "192.168.1.1/32")),
    ("allowlist-source-range", "2001:db8::/32", ("2001:db8::/32",)),
    ("denylist-source-range", "10.6.6.0/24", ("10.6.6.0/24",)),
    ("auth-type", "basic", "basic"),
    ("auth-secret", "users", SecretRef("", "users")),
    ("auth-secret", "team-a/users", SecretRef("team-a", "users")),
    ("auth-secret-type", "auth-map", "auth-map"),
    ("auth-realm", "Staff only (v2)", "Staff only (v2)"),
    ("auth-url", "http://auth.svc.cluster.local:4180/oauth2/auth", "http://auth.svc.cluster.local:4180/oauth2/auth"),
    ("auth-signin", "https://sso.example.com/start?x=1", "https://sso.example.com/start?x=1"),
    ("auth-url", "https://$host/oauth2/auth", "https://$host/oauth2/auth"),
    ("auth-url", "$scheme://$host:$server_port/auth?u=$escaped_request_uri",
     "$scheme://$host:$server_port/auth?u=$escaped_request_uri"),
    ("auth-signin", "https://$host/oauth2/start?rd=$escaped_request_uri",
     "https://$host/oauth2/start?rd=$escaped_request_uri"),
    ("auth-signin", "https://sso.example.com/?rd=$scheme://$host$request_uri",
     "https://sso.example.com/?rd=$scheme://$host$request_uri"),
    ("auth-method", "post", "POST"),
    ("auth-response-headers", "X-User, X-Email", ("X-User", "X-Email")),
    ("auth-tls-secret", "app/client-ca", SecretRef("app", "client-ca")),
    ("auth-tls-verify-client", "optional", "optional"),
    ("auth-tls-verify-depth", "3", 3),
    ("auth-tls-pass-certificate-to-upstream", "true", True),
    ("auth-tls-match-cn", "CN=(alice|bob)", "CN=(alice|bob)"),
    ("limit-rps", "10", 10),
    ("limit-rpm", "600", 600),
    ("limit-connections", "5", 5),
    ("limit-burst-multiplier", "3", 3),
    ("limit-whitelist", "127.0.0.1, ::1", ("127.0.0.1/32", "::1/128")),
    ("enable-cors", "true", True),
    ("cors-allow-origin", "https://a.example.com, https://*.b.example.com:8443",
     ("https://a.example.com", "https://*.b.example.com:8443")),
    ("cors-allow-origin", "*", ("*",)),
    ("cors-allow-methods", "get, POST", ("GET", "POST")),
    ("cors-allow-headers", "Content-Type,X-Token", ("Content-Type", "X-Token")),
    ("cors-allow-credentials", "false", False),
    ("cors-expose-headers", "X-Trace-Id", ("X-Trace-Id",)),
    ("cors-max-age", "600", 600),
    ("canary", "true", True),
    ("canary-by-header", "X-Canary", "X-Canary"),
    ("canary-by-header-value", "eu-west 1", "eu-west 1"),
    ("canary-by-header-pattern", "^(eu|us)-west-[0-9]+$", "^(eu|us)-west-[0-9]+$"),
    ("canary-by-cookie", "use_v2", "use_v2"),
    ("satisfy", "any", "any"),
    ("auth-cache-key", "$remote_user$http_authorization", "$remote_user$http_authorization"),
    ("auth-cache-duration", "200 202 10m, 401 30s", ("200 202 600s", "401 30s")),
    ("custom-headers", "security-headers", SecretRef("", "security-headers")),
    ("auth-proxy-set-headers", "team/auth-headers", SecretRef("team", "auth-headers")),
    ("ssl-passthrough", "true", True),
    ("proxy-ssl-secret", "backend-tls", SecretRef("", "backend-tls")),
    ("proxy-ssl-verify", "on", "on"),
    ("proxy-ssl-verify-depth", "3", 3),
    ("proxy-ssl-name", "api.internal.example", "api.internal.example"),
    ("proxy-ssl-server-name", "on", "on"),
    ("proxy-ssl-protocols", "TLSv1.2 TLSv1.3", ("TLSv1.2", "TLSv1.3")),
    ("proxy-ssl-ciphers", "HIGH:!aNULL:!MD5", "HIGH:!aNULL:!MD5"),
    ("proxy-ssl-location-only", "true", True),
    ("affinity", "cookie", "cookie"),
    ("affinity-mode", "persistent", "persistent"),
    ("affinity-mode", "balanced", "balanced"),
    ("session-cookie-name", "route_v2.x-y", "route_v2.x-y"),
    ("session-cookie-path", "/app", "/app"),
    ("session-cookie-domain", ".example.com", ".example.com"),
    ("session-cookie-expires", "172800", 172800),
    ("session-cookie-max-age", "3600", 3600),
    ("session-cookie-samesite", "None", "None"),
    ("session-cookie-conditional-samesite-none", "true", True),
    ("session-cookie-secure", "false", False),
    ("session-cookie-change-on-failure", "true", True),
    ("satisfy", "all", "all"),
    ("use-port-in-redirects", "true", True),
    ("ssl-ciphers", "ECDHE-RSA-AES128-GCM-SHA256:!aNULL", "ECDHE-RSA-AES128-GCM-SHA256:!aNULL"),
    ("ssl-prefer-server-ciphers", "false", False),
    ("canary-weight", "25", 25),
    ("canary-weight-total", "1000", 1000),
    ("custom-http-errors", "404, 503,500", (404, 500, 503)),
    ("default-backend", "errors", "errors"),
    ("mirror-target", "http://10.0.0.9:9000/copy$request_uri", MirrorTarget("http://10.0.0.9:9000/copy", True)),
    ("mirror-target", "https://mirror.example.com/", MirrorTarget("https://mirror.example.com/", False)),
    ("mirror-request-body", "false", False),
    ("mirror-host", "shadow.example.com", "shadow.example.com"),
    ("configuration-snippet", "add_header X-A b;", None),  # checked in test_annotations_snippet
    ("server-snippet", "location = /x { return 204; }", None),
    ("auth-snippet", "proxy_set_header X-From-Snippet yes;", None),
]

# (annotation, bad value, words the reason must contain)
BAD: list[tuple[str, str, str]] = [
    ("use-regex", "maybe", "not true or false"),
    ("rewrite-target", "/$host", "$1..$9"),
    ("rewrite-target", "/a b", "safe URL characters"),
    ("rewrite-target", "relative/$1", "must start with '/'"),
    ("app-root", "app", "must start with '/'"),
    ("x-forwarded-prefix", "/a;b", "must start with '/'"),
    ("permanent-redirect", "javascript:alert(1)", "http(s) URL"),
    ("permanent-redirect", "https://a.example.com/$request_uri", "http(s) URL"),
    ("permanent-redirect-code", "200", "not in 300-308"),
    ("temporal-redirect", "https://UPPER.example.com/", "http(s) URL"),
    ("temporal-redirect", "https://a..example.com/", "not a valid DNS name"),
    ("server-alias", "a.example.com, bad_host", "not a valid DNS name"),
    ("proxy-read-timeout", "60 s", "not a duration"),
    ("proxy-body-size", "1t", "not a size"),
    ("backend-protocol", "FCGI", "not one of"),
    ("upstream-vhost", "a.example.com:99999", "not in 1-65535"),
    ("upstream-hash-by", "$request_body", "must be made of the variables"),
    ("upstream-hash-by", "$http_x;", "must be made of the variables"),
    ("load-balance", "ewma", "not one of"),
    ("proxy-next-upstream", "error off", "cannot be combined"),
    ("proxy-next-upstream", "error bogus", "not one of"),
    ("proxy-next-upstream-tries", "101", "not in 0-100"),
    ("proxy-buffering", "maybe", "not on or off"),
    ("proxy-http-version", "2", "not one of"),
    ("proxy-buffers-number", "2", "not in"),
    ("proxy-cookie-path", "/ /a;b", "two paths"),
    ("proxy-cookie-domain", "a.com", "two domains"),
    ("proxy-redirect-from", "http://x/ y", ""),
    ("connection-proxy-header", "upgrade; evil", "not one of"),
    ("limit-rate", "-1", ""),
    ("limit-rate-after", "x", ""),
    ("whitelist-source-range", "10.0.0.0/33", "not an IP address or CIDR"),
    ("denylist-source-range", "", "empty list"),
    ("auth-type", "digest", "not one of"),
    ("auth-secret", "Users!", "not a valid Kubernetes name"),
    ("auth-secret-type", "file", "not one of"),
    ("auth-realm", 'Realm"', "may only contain"),
    ("auth-url", "ftp://auth.example.com/", "http(s) URL"),
    ("auth-url", "https://$hostname/auth", "variable $hostname, which is not allowed"),
    ("auth-url", "https://$http_x_target/auth", "variable $http_x_target, which is not allowed"),
    ("auth-url", "https://${host}/auth", "not ${host}"),
    ("auth-url", "https://auth.example.com/$", "does not start a variable name"),
    ("auth-url", "$request_uri", "variables replaced by examples"),
    ("auth-url", "https://$host/a b", "variables replaced by examples"),
    ("auth-url", "https://a.example.com/" + "a" * 1100, "longer than 1024"),
    ("auth-signin", "https://$host/start?rd=$arg_next", "variable $arg_next, which is not allowed"),
    ("auth-signin", "https://$host/start?rd=$remote_user", "variable $remote_user, which is not allowed"),
    ("auth-signin", "https://$host/start#$request_uri", "variables replaced by examples"),
    ("auth-signin", "https://$host/start?a=$escaped_request_uri;", "variables replaced by examples"),
    ("auth-method", "BREW", "not one of"),
    ("auth-response-headers", "X-User:1", "not a valid HTTP header name"),
    ("auth-tls-verify-client", "required", "not one of"),
    ("auth-tls-verify-depth", "0", "not in 1-10"),
    ("auth-tls-match-cn", "CN=(a", "does not compile"),
    ("auth-tls-match-cn", "CN=$ssl", "may only contain"),
    ("limit-rps", "0", "not in 1-"),
    ("limit-rpm", "ten", "not an integer"),
    ("limit-whitelist", "everyone", "not an IP address"),
    ("cors-allow-origin", "https://a.example.com/path", "scheme://host"),
    ("cors-allow-origin", "null", "scheme://host"),
    ("cors-allow-methods", "GET, FETCH", "not one of"),
    ("cors-max-age", "-1", "not in 0-"),
    ("canary", "yes please", "not true or false"),
    ("canary-by-header", "X Canary", "not a valid HTTP header name"),
    ("canary-by-header-value", 'a"b', "may only contain"),
    ("canary-by-header-pattern", "a b", "canary-by-header-pattern"),
    ("canary-by-header-pattern", "(a+)+$x", "canary-by-header-pattern"),
    ("satisfy", "some", "is not one of"),
    ("auth-snippet", "include /etc/passwd;", "auth-snippet"),
    ("auth-cache-key", "$document_root", "cannot be used"),
    ("auth-cache-key", "a b", "auth-cache-key"),
    ("auth-cache-duration", "200 xyz", "auth-cache-duration"),
    ("auth-cache-duration", "999 5m", "auth-cache-duration"),
    ("custom-headers", "a b", "custom-headers"),
    ("auth-proxy-set-headers", "x/y/z", "auth-proxy-set-headers"),
    ("mirror-host", "a;b", "mirror-host"),
    ("ssl-passthrough", "yes!", "not true or false"),
    ("proxy-ssl-secret", "a/b/c", "proxy-ssl-secret"),
    ("proxy-ssl-verify", "maybe", "not on or off"),
    ("proxy-ssl-verify-depth", "0", "proxy-ssl-verify-depth"),
    ("proxy-ssl-name", "$host", "proxy-ssl-name"),
    ("proxy-ssl-server-name", "yes", "not on or off"),
    ("proxy-ssl-protocols", "SSLv3", "is not one of"),
    ("proxy-ssl-ciphers", "HIGH; evil", "cipher list"),
    ("proxy-ssl-location-only", "sometimes", "not true or false"),
    ("affinity", "ip", "is not one of"),
    ("affinity-mode", "sticky", "is not one of"),
    ("session-cookie-name", "a=b", "may only contain"),
    ("session-cookie-path", "/a;b", "session-cookie-path"),
    ("session-cookie-domain", "a b", "not a cookie domain"),
    ("session-cookie-domain", "ex;ample.com", "not a cookie domain"),
    ("session-cookie-expires", "-1", "session-cookie-expires"),
    ("session-cookie-max-age", "999999999999", "session-cookie-max-age"),
    ("session-cookie-samesite", "lax", "is not one of"),
    ("session-cookie-conditional-samesite-none", "yes!", "not true or false"),
    ("session-cookie-secure", "secure", "not true or false"),
    ("session-cookie-change-on-failure", "1x", "not true or false"),
    ("use-port-in-redirects", "yes please", "not true or false"),
    ("ssl-ciphers", "HIGH; include /etc/passwd", "cipher list"),
    ("ssl-prefer-server-ciphers", "maybe", "not true or false"),
    ("canary-by-cookie", "a;b", "may only contain"),
    ("canary-weight", "-5", "not in 0-"),
    ("custom-http-errors", "404,302", "not in 400-599"),
    ("default-backend", "Errors", "not a valid Kubernetes name"),
    ("mirror-target", "http://m.example.com/$host", "http(s) URL"),
]


# Annotations that are only valid together with another one.
COMPANIONS = {
    "auth-type": {"auth-secret": "users"},
    "auth-signin": {"auth-url": "http://127.0.0.1:9/auth"},
    "auth-response-headers": {"auth-url": "http://127.0.0.1:9/auth"},
    "canary-by-header-value": {"canary-by-header": "X-Canary"},
    "canary-by-header-pattern": {"canary-by-header": "X-Canary"},
    "proxy-ssl-verify": {"proxy-ssl-secret": "backend-tls"},
}


def parse(name: str, value: str, snippets: bool = True) -> tuple[Any, list[Any]]:
    extra = {PREFIX + k: val for k, val in COMPANIONS.get(name, {}).items()}
    return parse_annotations({**extra, PREFIX + name: value}, allow_snippets=snippets)


@pytest.mark.parametrize(("name", "value", "expected"), GOOD, ids=[f"{n}={val}" for n, val, _ in GOOD])
def test_good_values(name: str, value: str, expected: Any) -> None:
    cfg, problems = parse(name, value)
    assert problems == []
    if expected is not None:
        assert getattr(cfg, REGISTRY[name].field) == expected


@pytest.mark.parametrize(("name", "value", "reason"), BAD, ids=[f"{n}={val}" for n, val, _ in BAD])
def test_bad_values_are_refused_naming_annotation_and_value(name: str, value: str, reason: str) -> None:
    cfg, problems = parse(name, value)
    assert len(problems) == 1 and not problems[0].warning
    text = str(problems[0])
    shown = repr(value) if len(value) <= 400 else repr(value[:200])[:-1]  # long values: their start
    assert PREFIX + name in text and shown in text
    assert reason in text
    assert getattr(cfg, REGISTRY[name].field) == getattr(type(cfg)(), REGISTRY[name].field)


def test_every_registered_annotation_has_good_and_bad_cases() -> None:
    bad_exempt = {"ssl-redirect", "force-ssl-redirect", "preserve-trailing-slash", "enable-access-log",
                  "proxy-redirect-to", "from-to-www-redirect", "service-upstream",
                  "auth-tls-pass-certificate-to-upstream", "enable-cors", "cors-allow-credentials",
                  "mirror-request-body", "configuration-snippet", "server-snippet", "limit-connections",
                  "limit-burst-multiplier", "proxy-connect-timeout", "proxy-send-timeout",
                  "proxy-next-upstream-timeout", "proxy-buffer-size", "proxy-request-buffering",
                  "client-body-buffer-size", "cors-allow-headers", "cors-expose-headers", "canary-weight-total",
                  "auth-signin", "auth-tls-secret", "allowlist-source-range"}  # same validator as a listed one
    assert {n for n, _, _ in GOOD} == set(REGISTRY)
    assert {n for n, _, _ in BAD} | bad_exempt == set(REGISTRY)


def test_unsupported_annotation_is_a_warning_not_ignored() -> None:
    _, problems = parse("stream-snippet", "server { listen 1; }")
    assert len(problems) == 1 and problems[0].warning and "not supported" in problems[0].reason


def test_snippets_refused_when_disabled() -> None:
    _, problems = parse("configuration-snippet", "add_header X-A b;", snippets=False)
    assert len(problems) == 1 and not problems[0].warning and "allow-snippet-annotations" in problems[0].reason


@pytest.mark.parametrize(("annotations", "refused"), [
    ({"canary-weight": "150"}, "canary-weight"),
    ({"canary-weight": "15", "canary-weight-total": "10"}, "canary-weight"),
    ({"canary-by-header-value": "x"}, "canary-by-header-value"),
    ({"canary-by-header-pattern": "x"}, "canary-by-header-pattern"),
    ({"proxy-ssl-verify": "on"}, "proxy-ssl-verify"),
    ({"auth-type": "basic"}, "auth-type"),
    ({"auth-signin": "https://sso.example.com/"}, "auth-signin"),
    ({"auth-response-headers": "X-User"}, "auth-response-headers"),
])
def test_inconsistent_combinations_are_refused(annotations: dict[str, str], refused: str) -> None:
    _, problems = parse_annotations({PREFIX + k: val for k, val in annotations.items()})
    assert [p.annotation for p in problems] == [PREFIX + refused]


def test_temporal_redirect_wins_over_permanent() -> None:
    cfg, _ = parse_annotations({PREFIX + "temporal-redirect": "https://t.example.com/",
                                PREFIX + "permanent-redirect": "https://p.example.com/"})
    assert cfg.redirect == (302, "https://t.example.com/")


def test_rewrite_target_implies_regex() -> None:
    cfg, _ = parse("rewrite-target", "/$1")
    assert cfg.regex and not cfg.use_regex


# -- issue 14 §1: fail closed on what changes security or where TLS ends -----------------------

@pytest.mark.parametrize("name", [
    "proxy-ssl-new-thing", "auth-new-thing",
    "auth-tls-error-page", "enable-modsecurity", "modsecurity-snippet", "enable-owasp-core-rules",
    "global-rate-limit", "limit-new-thing", "whitelist-something-new", "denylist-new-thing", "auth-keepalive",
])
def test_an_unsupported_security_annotation_refuses_the_ingress(name: str) -> None:
    _, problems = parse_annotations({PREFIX + name: "true"})
    assert len(problems) == 1 and not problems[0].warning, problems
    assert "refused" in problems[0].reason


@pytest.mark.parametrize("name", ["enable-opentelemetry", "proxy-max-temp-file-size",
                                  "stream-snippet", "no-such-annotation"])
def test_an_unsupported_harmless_annotation_is_a_warning(name: str) -> None:
    _, problems = parse_annotations({PREFIX + name: "x"})
    assert len(problems) == 1 and problems[0].warning, problems
