"""Findings of the security review of the path from Kubernetes objects to nginx.conf.

Each test is an attack by someone who may create Ingresses, Services, EndpointSlices and
Secrets in their own namespace (or write any manifest in local mode), and what a user
would notice if it worked: text of theirs in nginx.conf, a configuration nobody can reload,
or another namespace's traffic reaching their pods.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ingressctl.ingress import values as v
from ingressctl.ingress.annotations import PREFIX, REGISTRY, parse_annotations, shapes
from ingressctl.ingress.build import BuildResult
from ingressctl.nginx.defaultcert import ensure_default_certificate
from ingressctl.nginx.render import RenderContext, Renderer
from ingressctl.objects import KubeObject, parse_object

from .factory import endpoint_slice, ingress, ingress_class, path, reasons, run_build, service
from .test_golden import nginx_binary

LATER = "2026-02-01T00:00:00Z"


def render(result: BuildResult) -> str:
    return Renderer().render(result.model, RenderContext(prefix="/state"))


def upstream_of(result: BuildResult, host: str) -> str:
    server = result.model.server(host)
    assert server is not None
    return next(loc.upstream for loc in server.locations if loc.path == "/" and loc.modifier == "")


def endpoints_of(result: BuildResult, name: str) -> list[str]:
    return [e.hostport for u in result.model.upstreams if u.name == name for e in u.endpoints]


# -- 1. Python's `$` matches before a trailing newline --------------------------------------

NEWLINE_CASES: list[tuple[str, Callable[[str], object], str]] = [
    ("host", v.host, "a.example.com"),
    ("path", v.path, "/api"),
    ("k8s-name", v.k8s_name, "web"),
    ("token", v.token, "session"),
    ("header", v.header_name, "X-Canary"),
    ("realm", shapes.text, "Protected area"),
    ("cn-regex", shapes.cn_regex, "CN=alice"),
]


@pytest.mark.parametrize(("what", "check", "good"), NEWLINE_CASES, ids=[c[0] for c in NEWLINE_CASES])
def test_validators_refuse_a_trailing_newline(what: str, check: Callable[[str], object], good: str) -> None:
    check(good)
    with pytest.raises(v.InvalidValue):
        check(good + "\n")


@pytest.mark.parametrize("field", ["path", "host", "service"])
def test_a_trailing_newline_skips_only_its_ingress(field: str) -> None:
    host, p, svc = "bad.example.com", "/x", "web"
    if field == "path":
        p += "\n"
    elif field == "host":
        host += "\n"
    else:
        svc += "\n"
    result = run_build(ingress_class(), service(), endpoint_slice(),
                       ingress("good", [("good.example.com", [path("/")])]),
                       ingress("bad", [(host, [path(p, svc=svc)])], created=LATER))
    assert "InvalidIngress" in reasons(result)
    text = render(result)  # before the fix: RenderError, or a newline inside server_name
    assert "server_name good.example.com;" in text and "bad.example.com" not in text


# -- 2. IPv6 zone ids: ipaddress accepts any text after '%' -------------------------------

ZONE_ESCAPE = "fe80::1%x;allow all;deny 10.0.0.0"


@pytest.mark.parametrize("check", [v.cidr, v.ip_address])
def test_ip_validators_refuse_zone_ids(check: Callable[[str], object]) -> None:
    check("fe80::1")
    with pytest.raises(v.InvalidValue):
        check(ZONE_ESCAPE)


@pytest.mark.parametrize("annotation", ["whitelist-source-range", "allowlist-source-range",
                                        "denylist-source-range", "limit-whitelist"])
def test_source_range_annotations_refuse_zone_ids(annotation: str) -> None:
    cfg, problems = parse_annotations({PREFIX + annotation: "10.0.0.0/8," + ZONE_ESCAPE})
    assert [p.annotation for p in problems if not p.warning] == [PREFIX + annotation]


def test_endpoint_addresses_with_a_zone_id_are_not_endpoints() -> None:
    escape = "fe80::1%x]:1;}\nserver{listen 127.0.0.1:9999;return 200 owned;}\nupstream y{server 1.1.1.1"
    sl = parse_object({
        "kind": "EndpointSlice", "addressType": "IPv6",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [escape]}, {"addresses": ["fd00::1"]}]})
    result = run_build(ingress_class(), service(), sl, ingress("a", [("a.example.com", [path("/")])]))
    assert endpoints_of(result, upstream_of(result, "a.example.com")) == ["[fd00::1]:8080"]
    assert "owned" not in render(result)


def test_service_upstream_ignores_a_cluster_ip_with_a_zone_id() -> None:
    svc = service(clusterIP="fe80::1%x;}")
    result = run_build(ingress_class(), svc, endpoint_slice(),
                       ingress("a", [("a.example.com", [path("/")])],
                               annotations={PREFIX + "service-upstream": "true"}))
    assert endpoints_of(result, upstream_of(result, "a.example.com")) == ["10.0.0.1:8080"]
    assert "%" not in render(result)


# -- 3. names joined with '-' are not unique across namespaces ----------------------------

def test_upstream_names_do_not_collide_across_namespaces() -> None:
    # a-b/c:80 and a/b-c:80 were both upstream "a-b-c-80": one set of endpoints for both hosts.
    result = run_build(
        ingress_class(),
        service("c", ns="a-b"), endpoint_slice("c", ["10.0.0.1"], ns="a-b"),
        ingress("bank", [("bank.example.com", [path("/", svc="c")])], ns="a-b"),
        service("b-c", ns="a"), endpoint_slice("b-c", ["10.6.6.6"], ns="a"),
        ingress("evil", [("evil.example.com", [path("/", svc="b-c")])], ns="a", created=LATER))
    bank, evil = upstream_of(result, "bank.example.com"), upstream_of(result, "evil.example.com")
    assert bank != evil
    assert endpoints_of(result, bank) == ["10.0.0.1:8080"]
    assert endpoints_of(result, evil) == ["10.6.6.6:8080"]


def test_rate_limit_zones_do_not_collide() -> None:
    limited = {PREFIX + "limit-rps": "5", PREFIX + "limit-whitelist": "10.0.0.0/8"}
    result = run_build(
        ingress_class(), service(ns="a-b"), endpoint_slice(ns="a-b"), service(ns="a"), endpoint_slice(ns="a"),
        service(), endpoint_slice(),
        ingress("c", [("one.example.com", [path("/")])], ns="a-b", annotations=limited),
        ingress("b-c", [("two.example.com", [path("/")])], ns="a", annotations=limited),
        ingress("x.y", [("three.example.com", [path("/")])], annotations=limited),
        ingress("x-y", [("four.example.com", [path("/")])], annotations=limited))
    zones = result.model.rate_limits
    assert len(zones) == 4
    assert len({z.zone for z in zones}) == len({z.key_variable for z in zones}) == 4
    text = render(result)
    for z in zones:
        assert text.count(f"zone={z.zone}-rps:") == 1


# -- 4. a canary must not take traffic of another namespace ------------------------------

def test_canary_in_another_namespace_is_not_attached() -> None:
    canary = {PREFIX + "canary": "true", PREFIX + "canary-weight": "100"}
    result = run_build(
        ingress_class(), service(ns="bank"), endpoint_slice(ns="bank"),
        ingress("main", [("bank.example.com", [path("/")])], ns="bank"),
        service(ns="evil"), endpoint_slice(addresses=["10.6.6.6"], ns="evil"),
        ingress("steal", [("bank.example.com", [path("/")])], ns="evil", created=LATER, annotations=canary))
    server = result.model.server("bank.example.com")
    assert server is not None and all(loc.canary is None for loc in server.locations)
    assert not result.model.canaries
    assert [(p.namespace, p.reason) for p in result.problems if p.reason.startswith("Canary")] == [
        ("evil", "CanaryNamespace")]
    text = render(result)  # its upstream block may be declared; nothing routes to it
    assert "http://evil-web-80;" not in text and " evil-web-80;" not in text


def test_htpasswd_user_with_a_trailing_newline_is_refused() -> None:
    import base64

    from ingressctl.ingress.annotations import IngressConfig
    from ingressctl.ingress.auth import AuthError, htpasswd_file

    secret = parse_object({"kind": "Secret", "metadata": {"name": "users", "namespace": "default"},
                           "data": {"bob\n": base64.b64encode(b"$apr1$x$y").decode()}})
    with pytest.raises(AuthError):
        htpasswd_file(secret, IngressConfig(auth_secret_type="auth-map"))  # type: ignore[arg-type]


# -- 5. regex paths: what Python's re accepts but the q_re filter or nginx's PCRE refuses ---
# One such Ingress used to stop every later configuration (RenderError or nginx -t failure).

PCRE_OR_FILTER_REFUSES = [
    "/a$(x)", "/a$.", "/a$/", "/a$[x]",  # '$' that q_re refuses
    "/a\x01", "/a\x7f",  # control characters
    "/(?a:x)", "/(?u:x)", "/(?P<\u00e9>x)",  # group syntax PCRE does not know
    "/[[:foo:]]", "/[[.a.]]", "/[[=a=]]",  # POSIX classes PCRE refuses
]


@pytest.mark.parametrize("regex", PCRE_OR_FILTER_REFUSES)
def test_regex_paths_nginx_cannot_take_are_refused(regex: str) -> None:
    with pytest.raises(v.InvalidValue):
        v.regex_path(regex)


@pytest.mark.parametrize("regex", ["/api/(v[0-9]+)/(.*)", "/a$", "/a$|/b", "/(?i:x)", "/(?P<id>[0-9]+)",
                                   "/(?:a|b)", "/x(?=y)", "/x(?!y)", "/(?<=x)y", "/[[:alpha:]]+", "/\\.well"])
def test_regex_paths_nginx_takes_are_accepted(regex: str) -> None:
    assert v.regex_path(regex) == regex


# -- 6. a host-less regex rule must not shadow every host's own paths ------------------------

def test_hostless_regex_rule_stays_on_the_default_server() -> None:
    # nginx tries regex locations before prefix ones: merged into every server, a host-less
    # '/.*' of one namespace answered every path of every host.
    result = run_build(
        ingress_class(), service(ns="bank"), endpoint_slice(ns="bank"),
        ingress("main", [("bank.example.com", [path("/")])], ns="bank"),
        service(ns="evil"), endpoint_slice(addresses=["10.6.6.6"], ns="evil"),
        ingress("all", [("", [path("/.*", ptype="ImplementationSpecific")])], ns="evil", created=LATER,
                annotations={PREFIX + "use-regex": "true"}))
    bank = result.model.server("bank.example.com")
    default = result.model.server("")
    assert bank is not None and default is not None
    assert [loc.upstream for loc in bank.locations] == ["bank-web-80"]
    assert any(loc.is_regex and loc.upstream == "evil-web-80" for loc in default.locations)


@pytest.mark.parametrize(("regex", "ok"), [("(?i)CN=alice", True), ("CN=(alice|bob)", True), ("(?a)CN=x", False),
                                           ("CN=(?u:x)", False)])
def test_client_dn_regex_must_compile_in_pcre_too(regex: str, ok: bool) -> None:
    if ok:
        assert shapes.cn_regex(regex) == regex
    else:
        with pytest.raises(v.InvalidValue):
            shapes.cn_regex(regex)


ACCEPTED_REGEXES = ["/api/(v[0-9]+)/(.*)", "/a$", "/a$|/b", "/(?i:x)", "/(?P<id>[0-9]+)", "/(?:a|b)", "/x(?=y)",
                    "/x(?!y)", "/(?<=x)y", "/[[:alpha:]]+", "/\\.well", "/(?P<n>x)(?P=n)", "/x++", "/(?>x)",
                    "/(a$)", "/\u00e9t\u00e9", "/\\d+/\\w+/\\s?\\D\\W\\S", "/(.+)/(.+)"]


def test_accepted_regex_paths_pass_nginx_t(tmp_path: Path) -> None:
    """Every regex shape the validator accepts must also compile in nginx (one that does not
    fails nginx -t, and with it every later configuration)."""
    objs = [ingress_class(), service(), endpoint_slice()]
    for i, regex in enumerate(ACCEPTED_REGEXES):
        assert v.regex_path(regex) == regex
        objs.append(ingress(f"r{i}", [(f"h{i}.example.com", [path(regex, ptype="ImplementationSpecific")])],
                            annotations={PREFIX + "use-regex": "true", PREFIX + "rewrite-target": "/"}))
    assert_nginx_accepts(run_build(*objs), tmp_path)


def assert_nginx_accepts(result: BuildResult, tmp_path: Path) -> None:
    assert not [p for p in result.problems if not p.warning], result.problems
    prefix = tmp_path / "nginx"
    for d in ("tmp", "logs", "certs"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    ensure_default_certificate(prefix / "certs" / "default.pem")
    conf = prefix / "nginx.conf"
    conf.write_text(Renderer().render(result.model, RenderContext(prefix=str(prefix), listen=("127.0.0.1:",))))
    r = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(prefix), "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_hostless_rules_do_not_reach_hosts_of_other_namespaces() -> None:
    # bank.example.com serves '/' itself; a host-less '/admin' of another namespace was merged
    # into its server and, as the longer prefix, took bank.example.com/admin.
    result = run_build(
        ingress_class(), service(ns="bank"), endpoint_slice(ns="bank"),
        ingress("main", [("bank.example.com", [path("/")])], ns="bank", created=LATER),
        service(ns="evil"), endpoint_slice(addresses=["10.6.6.6"], ns="evil"),
        service(ns="bank", name="ops"), endpoint_slice("ops", ["10.0.0.7"], ns="bank"),
        ingress("grab", [("", [path("/admin")])], ns="evil"),
        ingress("ops", [("", [path("/ops", svc="ops")])], ns="bank"))
    assert routes_of(result, "bank.example.com") == [("=", "/ops", "bank-ops-80"), ("", "/ops/", "bank-ops-80"),
                                                     ("", "/", "bank-web-80")]
    assert ("=", "/admin", "evil-web-80") in routes_of(result, "")


def routes_of(result: BuildResult, host: str) -> list[tuple[str, str, str]]:
    server = result.model.server(host)
    assert server is not None
    return [(loc.modifier, loc.path, loc.upstream) for loc in server.locations]


# -- 7. file names under the state dir --------------------------------------------------------

def test_long_secret_names_still_make_file_names_the_kernel_takes(tmp_path: Path) -> None:
    # namespace (63) + Secret name (253) made a certificate file name over 255 bytes: writing
    # it failed every later sync, for every Ingress.
    import base64

    from ingressctl.controller import model_files
    from ingressctl.nginx.process import write_files

    from .factory import tls_secret

    ns, name = "n" * 63, ".".join(["s" * 63] * 4)[:253]
    users = parse_object({"kind": "Secret", "metadata": {"name": "u" + name[1:], "namespace": ns},
                          "data": {"auth": base64.b64encode(b"bob:$apr1$x$y\n").decode()}})
    result = run_build(ingress_class(), service(ns=ns), endpoint_slice(ns=ns), users,
                       tls_secret(name, "a.example.com", ns=ns),
                       ingress("a", [("a.example.com", [path("/")])], ns=ns,
                               tls=[{"hosts": ["a.example.com"], "secretName": name}],
                               annotations={PREFIX + "auth-type": "basic", PREFIX + "auth-secret": "u" + name[1:]}))
    files = model_files(result.model)
    assert len(files) == 2 and not [p for p in result.problems if not p.warning]
    write_files(tmp_path, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)


# -- 8. lengths the API server allows must fit nginx's hash buckets ---------------------------

def test_longest_legal_names_pass_nginx_t(tmp_path: Path) -> None:
    # A 253-character host overflowed server_names_hash_bucket_size, a 63-character namespace
    # with a 253-character Ingress name variables_hash_bucket_size (rate-limit variables):
    # nginx -t failed, and with it every later configuration.
    label = "a" * 63
    host = ".".join([label] * 3 + ["b" * 57, "com"])
    assert len(v.host(host)) == 253
    ns, name = "n" * 63, ".".join(["s" * 63] * 4)[:253]
    limited = {PREFIX + "limit-rps": "5", PREFIX + "limit-whitelist": "10.0.0.0/8",
               PREFIX + "from-to-www-redirect": "true"}
    canary = {PREFIX + "canary": "true", PREFIX + "canary-by-header": "X-" + "h" * 62,
              PREFIX + "canary-by-header-value": "v" * 256}  # a map key: map_hash_bucket_size
    result = run_build(ingress_class(), service(ns=ns), endpoint_slice(ns=ns), service("c", ns=ns),
                       endpoint_slice("c", ["10.0.0.3"], ns=ns),
                       ingress(name, [(host, [path("/")]), ("short.example.com", [path("/")])], ns=ns,
                               annotations=limited),
                       ingress("canary", [("short.example.com", [path("/", svc="c")])], ns=ns, created=LATER,
                               annotations=canary))
    assert len(result.model.canaries) == 1
    assert result.model.server("www." + host) is not None  # 257 characters
    assert_nginx_accepts(result, tmp_path)


# -- 9. numbers the validators took and nginx -t refused -------------------------------------

@pytest.mark.parametrize(("annotation", "value"), [
    ("proxy-buffer-size", "0"), ("proxy-buffer-size", "999999999g"), ("proxy-buffer-size", "2m"),
    ("client-body-buffer-size", "999999999g"), ("client-body-buffer-size", "17m"),
    ("limit-connections", "65536"), ("limit-connections", "100000"),
])
def test_sizes_and_counts_nginx_refuses_are_invalid(annotation: str, value: str) -> None:
    cfg, problems = parse_annotations({PREFIX + annotation: value})
    assert [p.annotation for p in problems if not p.warning] == [PREFIX + annotation]


def test_largest_accepted_sizes_and_counts_pass_nginx_t(tmp_path: Path) -> None:
    largest = {"proxy-buffer-size": "1m", "client-body-buffer-size": "16m", "limit-connections": "65535",
               "proxy-body-size": "999999999g", "limit-rps": "1000000", "limit-burst-multiplier": "1000",
               "proxy-read-timeout": "7d"}
    result = run_build(ingress_class(), service(), endpoint_slice(),
                       ingress("a", [("a.example.com", [path("/")])],
                               annotations={PREFIX + k: val for k, val in largest.items()}))
    assert_nginx_accepts(result, tmp_path)


def test_every_good_annotation_value_passes_nginx_t(tmp_path: Path) -> None:
    """Each value the annotation tables call good, on an Ingress of its own, in one config."""
    from .test_annotations_parse import COMPANIONS, GOOD

    objs = [ingress_class(), service(), endpoint_slice(), service("c"), endpoint_slice("c", ["10.0.0.3"])]
    for i, (name, value, _) in enumerate(GOOD):
        if REGISTRY[name].snippet:
            continue
        ann = {PREFIX + k: val for k, val in {**COMPANIONS.get(name, {}), name: value}.items()}
        host = f"h{i}.example.com"
        objs.append(ingress(f"i{i}", [(host, [path("/")])], annotations={k: val for k, val in ann.items()
                                                                         if "canary" not in k}))
        if "canary" in name:
            objs.append(ingress(f"c{i}", [(host, [path("/", svc="c")])], created=LATER,
                                annotations={**ann, PREFIX + "canary": "true"}))
    result = run_build(*objs)
    refused = {p.name for p in result.problems if not p.warning}
    kept = [o for o in objs if getattr(getattr(o, "meta", None), "name", "") not in refused]
    assert len(kept) > len(GOOD) // 2, refused
    assert_nginx_accepts(run_build(*kept), tmp_path)


def test_custom_http_errors_refuse_499() -> None:
    # nginx's error_page takes 300-599 except 499: "499" failed nginx -t for everyone.
    assert shapes.status_codes("404, 503") == (404, 503)
    with pytest.raises(v.InvalidValue):
        shapes.status_codes("404,499")


def test_every_custom_http_error_code_accepted_passes_nginx_t(tmp_path: Path) -> None:
    codes = ",".join(str(c) for c in range(400, 600) if c != 499)
    result = run_build(ingress_class(), service(), endpoint_slice(), service("c"), endpoint_slice("c", ["10.0.0.3"]),
                       ingress("a", [("a.example.com", [path("/")])],
                               annotations={PREFIX + "custom-http-errors": codes, PREFIX + "default-backend": "c"}))
    assert_nginx_accepts(result, tmp_path)


# -- 10. certificates nginx's OpenSSL refuses to load -----------------------------------------

def _openssl_tls_secret(tmp_path: Path, name: str, *args: str) -> KubeObject:
    """A self-signed certificate made by the openssl CLI (cryptography no longer signs with SHA-1)."""
    import base64

    key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
    if args[0] == "ca-signed":  # a leaf signed by a CA of its own (the CA's certificate in the chain)
        ca_key, ca_crt, csr = tmp_path / "ca.key", tmp_path / "ca.crt", tmp_path / f"{name}.csr"
        for cmd in (["req", "-x509", "-nodes", "-subj", "/CN=ca", "-days", "3650", "-newkey", "rsa:2048",
                     "-keyout", str(ca_key), "-out", str(ca_crt)],
                    ["req", "-nodes", "-subj", "/CN=a.example.com", "-newkey", "rsa:2048", "-keyout", str(key),
                     "-out", str(csr)],
                    ["x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-set_serial", "2",
                     "-days", "3650", "-out", str(crt), *args[1:]]):
            subprocess.run(["openssl", *cmd], check=True, capture_output=True, timeout=60)
        crt.write_bytes(crt.read_bytes() + ca_crt.read_bytes())
    else:
        subprocess.run(["openssl", "req", "-x509", "-nodes", "-subj", "/CN=a.example.com", "-days", "3650",
                        "-keyout", str(key), "-out", str(crt), *args], check=True, capture_output=True, timeout=60)
    return parse_object({"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name, "namespace": "default"},
                         "data": {"tls.crt": base64.b64encode(crt.read_bytes()).decode(),
                                  "tls.key": base64.b64encode(key.read_bytes()).decode()}})


def build_now(*objs: KubeObject) -> BuildResult:
    """openssl's certificates start now, not at the factory's fixed NOW."""
    from datetime import UTC, datetime

    from ingressctl.ingress.build import BuildOptions, build
    from ingressctl.store import Snapshot

    return build(Snapshot.of(objs), BuildOptions(now=datetime.now(UTC)))


WEAK_CERTIFICATES = {
    "rsa-1024": ("-newkey", "rsa:1024"),
    "rsa-2048-sha1": ("ca-signed", "-sha1"),
    "ec-p192": ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"),
}


@pytest.mark.parametrize("kind", sorted(WEAK_CERTIFICATES))
def test_certificates_openssl_refuses_are_invalid_not_fatal(kind: str, tmp_path: Path) -> None:
    # nginx -t fails with "ee key too small" / "ca md too weak" on such a Secret (Debian's
    # OpenSSL security level 2): one team's test certificate stopped every configuration.
    from ingressctl.controller import model_files
    from ingressctl.nginx.process import write_files

    weak = _openssl_tls_secret(tmp_path, "weak", *WEAK_CERTIFICATES[kind])
    result = build_now(ingress_class(), service(), endpoint_slice(), weak,
                       ingress("a", [("a.example.com", [path("/")])],
                               tls=[{"hosts": ["a.example.com"], "secretName": "weak"}]))
    assert "InvalidCertificate" in reasons(result) and not result.model.certificates
    write_files(tmp_path / "nginx" / "certs", model_files(result.model))
    assert_nginx_accepts(result, tmp_path)


def test_strong_openssl_certificate_is_served(tmp_path: Path) -> None:
    from ingressctl.controller import model_files
    from ingressctl.nginx.process import write_files

    good = _openssl_tls_secret(tmp_path, "good", "ca-signed", "-sha256")
    result = build_now(ingress_class(), service(), endpoint_slice(), good,
                       ingress("a", [("a.example.com", [path("/")])],
                               tls=[{"hosts": ["a.example.com"], "secretName": "good"}]))
    assert len(result.model.certificates) == 1
    write_files(tmp_path / "nginx" / "certs", model_files(result.model))
    assert_nginx_accepts(result, tmp_path)


def test_certificate_with_a_key_that_cannot_sign_is_invalid(tmp_path: Path) -> None:
    # An X25519 key in tls.crt/tls.key matches and parses, and nginx -t fails with "unknown
    # certificate type".
    import base64
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, x25519
    from cryptography.x509.oid import NameOID

    from .factory import NOW

    ca, key = ec.generate_private_key(ec.SECP256R1()), x25519.X25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example.com")])
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(3).not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=9))
           .sign(ca, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    secret = parse_object({"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "x", "namespace": "default"},
                           "data": {"tls.crt": base64.b64encode(crt.public_bytes(serialization.Encoding.PEM)).decode(),
                                    "tls.key": base64.b64encode(pem).decode()}})
    result = run_build(ingress_class(), service(), endpoint_slice(), secret,
                       ingress("a", [("a.example.com", [path("/")])], tls=[{"hosts": ["a.example.com"], "secretName": "x"}]))
    assert "InvalidCertificate" in reasons(result) and not result.model.certificates


# -- 11. Secret contents stay out of logs and Events -----------------------------------------

def test_htpasswd_problems_do_not_quote_secret_lines() -> None:
    import base64

    from ingressctl.ingress.annotations import IngressConfig
    from ingressctl.ingress.auth import AuthError, htpasswd_file

    leaked = "$apr1$s3cr3tHashValue"
    secret = parse_object({"kind": "Secret", "metadata": {"name": "users", "namespace": "default"},
                           "data": {"auth": base64.b64encode(f"{leaked}:bob\n".encode()).decode()}})
    with pytest.raises(AuthError) as e:
        htpasswd_file(secret, IngressConfig())
    assert "s3cr3t" not in str(e.value)


def test_secret_parse_errors_do_not_quote_values() -> None:
    from ingressctl.objects import ObjectError

    with pytest.raises(ObjectError) as e:
        parse_object({"kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
                      "stringData": {"pin": 98765}})
    assert "98765" not in str(e.value) and "stringData.pin" in str(e.value)


# -- 12. bounded cost per Ingress --------------------------------------------------------------
# nginx -t took 11 s for one Ingress with 20,000 paths (40,000 locations), and every reload
# after it as long; per-location lists multiply with the paths. One object's cost is bounded so
# that a ResourceQuota on the number of Ingresses bounds a namespace's.

def test_an_ingress_with_too_many_paths_is_invalid() -> None:
    paths = [path(f"/p{i}") for i in range(v.MAX_PATHS_PER_INGRESS)]
    ok = run_build(ingress_class(), service(), endpoint_slice(), ingress("a", [("a.example.com", paths)]))
    assert not [p for p in ok.problems if not p.warning]
    too_many = run_build(ingress_class(), service(), endpoint_slice(),
                         ingress("a", [("a.example.com", paths), ("b.example.com", [path("/")])]))
    assert reasons(too_many) == ["InvalidIngress"] and too_many.model.server("a.example.com") is None


def test_cidr_lists_are_bounded() -> None:
    cidrs = [f"10.{i // 256}.{i % 256}.0/24" for i in range(v.MAX_CIDRS + 1)]
    assert len(v.cidr_list(",".join(cidrs[:-1]))) == v.MAX_CIDRS
    with pytest.raises(v.InvalidValue):
        v.cidr_list(",".join(cidrs))


# -- 13. ExternalName as a way into the controller's own network ------------------------------

@pytest.mark.parametrize("name", ["169.254.169.254", "127.0.0.1", "10.0.0.1", "localhost", "api.localhost",
                                  "metadata.google.internal", "instance-data.ec2.internal", "*.example.com"])
def test_external_names_that_are_addresses_or_local_are_refused(name: str) -> None:
    # "169.254.169.254" is a valid DNS-1123 name, so the API server takes it; nginx connects to
    # it as an address: the cloud metadata service, from the controller's pod.
    ext = service("ext", ports=[("http", 80)], type="ExternalName", externalName=name, clusterIP="")
    result = run_build(ingress_class(), ext, ingress("a", [("a.example.com", [path("/", svc="ext")])]))
    assert "InvalidExternalName" in reasons(result)
    assert name not in render(result)


def test_external_name_of_a_dns_name_is_served() -> None:
    ext = service("ext", ports=[("http", 80)], type="ExternalName", externalName="api.example.org", clusterIP="")
    result = run_build(ingress_class(), ext, ingress("a", [("a.example.com", [path("/", svc="ext")])]))
    assert 'set $external_host "api.example.org";' in render(result)


# -- 14. a canary header value is a key of an nginx map ---------------------------------------

@pytest.mark.parametrize("value", ["default", "include", "hostnames", "volatile", "~+", "~a"])
def test_canary_header_values_nginx_map_reads_as_syntax_are_refused(value: str) -> None:
    # 'default' (duplicate default) and '~+' (a regex that does not compile) failed nginx -t for
    # everyone; 'include' made the map include a file named "1".
    with pytest.raises(v.InvalidValue):
        shapes.header_value(value)


@pytest.mark.parametrize("value", ["always-v2", "Default", "a~b", "x include y"])
def test_canary_header_values_that_are_plain_keys_pass_nginx_t(value: str, tmp_path: Path) -> None:
    canary = {PREFIX + "canary": "true", PREFIX + "canary-by-header": "X-C", PREFIX + "canary-by-header-value": value}
    result = run_build(ingress_class(), service(), endpoint_slice(), service("c"), endpoint_slice("c", ["10.0.0.3"]),
                       ingress("main", [("a.example.com", [path("/")])]),
                       ingress("can", [("a.example.com", [path("/", svc="c")])], created=LATER, annotations=canary))
    assert len(result.model.canaries) == 1
    assert_nginx_accepts(result, tmp_path)


# -- 15. paths of ingressctl's own internal locations ----------------------------------------

@pytest.mark.parametrize(("p", "ptype"), [("/_ingressctl_auth_1", "Exact"), ("/_ingressctl_mirror_2", "Prefix"),
                                          ("/_ingressctl", "Prefix")])
def test_paths_of_internal_locations_are_reserved(p: str, ptype: str) -> None:
    # A user's Exact /_ingressctl_auth_1 on a host with auth-url: "duplicate location", nginx -t
    # failed for everyone.
    with pytest.raises(v.InvalidValue):
        v.path(p)
    result = run_build(ingress_class(), service(), endpoint_slice(),
                       ingress("a", [("h.example.com", [path("/")])],
                               annotations={PREFIX + "auth-url": "http://auth.example.com/check"}),
                       ingress("b", [("h.example.com", [path(p, ptype=ptype)])], created=LATER))
    assert reasons(result) == ["InvalidIngress"]


# -- 16. a malformed object is an ObjectError, never a crash of the source --------------------

@pytest.mark.parametrize("ts", [5, [1], {"a": 1}, True])
def test_creation_timestamp_of_the_wrong_type_is_an_object_error(ts: object, tmp_path: Path) -> None:
    from ingressctl.objects import ObjectError
    from ingressctl.sources.files import ManifestDirectory
    from ingressctl.store import Store

    raw = {"kind": "Ingress", "metadata": {"name": "a", "namespace": "default", "creationTimestamp": ts}}
    with pytest.raises(ObjectError):
        parse_object(raw)
    (tmp_path / "bad.yaml").write_text(f"kind: Ingress\nmetadata: {{name: a, creationTimestamp: {ts!r}}}\n"
                                       .replace("True", "true"))
    (tmp_path / "good.yaml").write_text("kind: Ingress\nmetadata: {name: b, creationTimestamp: 2024-01-01T00:00:00Z}\n")
    store = Store()
    problems = ManifestDirectory(tmp_path, store).load()  # raised AttributeError: the source stopped
    assert [p.path for p in problems if "bad.yaml" in p.path]
    assert list(store.snapshot().ingresses) == ["default/b"]


# -- 17. regex paths are matched against every request: no exponential backtracking -----------

@pytest.mark.parametrize("regex", ["/(a*)*$", "/(a+)+$", "/(a|aa)+$", "/(.*a)*", "/((ab)*c)+", "/(?:x+y?)*z"])
def test_regex_paths_with_nested_repetition_are_refused(regex: str) -> None:
    # '^/(a|aa)+$' against '/aaa...ab' spends PCRE's whole match limit (0.17 s of a worker, for
    # every tenant) per request, from anyone on the internet.
    with pytest.raises(v.InvalidValue):
        v.regex_path(regex)


@pytest.mark.parametrize("regex", ["/api/(v[0-9]+)/(.*)", "/(a|b)/x+", "/(?:ab)+", "/x(ab)?y*", "/[a-z]+/[0-9]*"])
def test_regex_paths_with_single_repetition_are_accepted(regex: str) -> None:
    assert v.regex_path(regex) == regex


@pytest.mark.parametrize("regex", ["CN=(a+)+", "CN=(a|aa)*", "(.*,)*CN=x"])
def test_client_dn_regex_with_nested_repetition_is_refused(regex: str) -> None:
    with pytest.raises(v.InvalidValue):
        shapes.cn_regex(regex)


# -- 18. endpoint addresses the API server refuses are not endpoints here either --------------

@pytest.mark.parametrize("address", ["0.0.0.0", "::", "169.254.169.254", "fe80::1", "224.0.0.1", "ff02::1"])
def test_unspecified_link_local_and_multicast_endpoints_are_skipped(address: str) -> None:
    # 0.0.0.0 connects to the controller's own loopback; 169.254.169.254 is the cloud metadata
    # service. The API server refuses them in EndpointSlices; a manifest directory did not.
    family = "IPv6" if ":" in address else "IPv4"
    sl = parse_object({
        "kind": "EndpointSlice", "addressType": family,
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": [address]}]})
    result = run_build(ingress_class(), service(), sl, ingress("a", [("a.example.com", [path("/")])]))
    assert "NoEndpoints" in reasons(result)


def test_loopback_endpoints_still_serve_local_mode() -> None:
    result = run_build(ingress_class(), service(), endpoint_slice(addresses=["127.0.0.1"]),
                       ingress("a", [("a.example.com", [path("/")])]))
    assert endpoints_of(result, upstream_of(result, "a.example.com")) == ["127.0.0.1:8080"]


# -- Round 2 (a)1: no exception from one object's content escapes the build -----------------

DATA = Path(__file__).parent / "data"


def _secret(name: str, data: dict[str, bytes], kind: str = "kubernetes.io/tls", ns: str = "default") -> KubeObject:
    import base64

    return parse_object({"kind": "Secret", "type": kind, "metadata": {"name": name, "namespace": ns},
                         "data": {k: base64.b64encode(b).decode() for k, b in data.items()}})


SM2 = {"tls.crt": (DATA / "sm2.crt").read_bytes(), "tls.key": (DATA / "sm2.key").read_bytes()}


def _tls_ingress(name: str, host: str, secret: str, ns: str = "default") -> KubeObject:
    return ingress(name, [(host, [path("/", "web", 80)])], ns=ns, tls=[{"hosts": [host], "secretName": secret}])


def test_a_tls_secret_cryptography_cannot_load_is_an_invalid_certificate_not_a_crash() -> None:
    # SM2 key and SM2/SM3 certificate (openssl genpkey -algorithm SM2): UnsupportedAlgorithm
    result = run_build(ingress_class(), service("web"), _secret("sm2", SM2),
                       _tls_ingress("sm2", "sm2.test", "sm2"), ingress("other", [("other.test", [path("/", "web", 80)])]))
    server = result.model.server("sm2.test")
    assert server is not None and server.certificate == ""  # the default certificate
    assert "InvalidCertificate" in reasons(result)
    assert result.model.server("other.test") is not None


@pytest.mark.parametrize("data", [
    {"ca.crt": SM2["tls.crt"]},
    {"ca.crt": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
], ids=["sm2-ca", "garbage-ca"])
def test_an_auth_tls_ca_cryptography_cannot_load_refuses_only_its_ingress(data: dict[str, bytes]) -> None:
    ann = {"nginx.ingress.kubernetes.io/auth-tls-secret": "default/ca"}
    result = run_build(ingress_class(), service("web"), _secret("ca", data, kind="Opaque"),
                       ingress("mtls", [("mtls.test", [path("/", "web", 80)])], annotations=ann),
                       ingress("other", [("other.test", [path("/", "web", 80)])]))
    assert result.model.server("other.test") is not None


def test_an_exception_in_the_build_leaves_out_only_the_ingress_that_causes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug we do not know of yet, triggered by one Ingress's content: the last-resort isolation.
    from ingressctl.ingress import build as build_module

    real = build_module.ingress_routes

    def buggy(ing, allow_snippets):  # type: ignore[no-untyped-def]
        if ing.meta.name == "trigger":
            raise RuntimeError("unexpected")
        return real(ing, allow_snippets)

    monkeypatch.setattr(build_module, "ingress_routes", buggy)
    objs = [ingress_class(), service("web")] + [
        ingress(f"ok{i}", [(f"ok{i}.test", [path("/", "web", 80)])]) for i in range(9)]
    result = run_build(*objs, ingress("trigger", [("evil.test", [path("/", "web", 80)])], ns="evil"))
    assert [p for p in result.problems if p.reason == "InternalError"][0].name == "trigger"
    assert all(result.model.server(f"ok{i}.test") is not None for i in range(9))
    assert result.model.server("evil.test") is None


# -- Round 2, smaller findings ---------------------------------------------------------------

def test_an_ipv4_mapped_metadata_address_is_not_an_endpoint() -> None:
    from ingressctl.ingress.backends import routable_endpoint

    assert not routable_endpoint("::ffff:169.254.169.254")
    assert not routable_endpoint("::ffff:0.0.0.0")
    assert routable_endpoint("::ffff:10.0.0.1")


def test_a_lone_surrogate_in_a_path_is_refused_when_the_object_is_read() -> None:
    from ingressctl.objects import ObjectError

    with pytest.raises(ObjectError, match="Unicode"):
        parse_object({"kind": "Ingress", "metadata": {"name": "x", "namespace": "default"},
                      "spec": {"rules": [{"http": {"paths": [{"path": "/a\udc80", "pathType": "Prefix",
                                                              "backend": {"service": {"name": "web",
                                                                                      "port": {"number": 80}}}}]}}]}})


@pytest.mark.parametrize("host", ["10.0.0.1", "127.0.0.1", "1.2.3.4"])
def test_an_ip_address_is_not_an_ingress_host(host: str) -> None:
    with pytest.raises(v.InvalidValue):
        v.ingress_host(host)


def test_a_zero_client_body_buffer_size_is_refused() -> None:
    _, problems = parse_annotations({PREFIX + "client-body-buffer-size": "0"}, False)
    assert problems and not problems[0].warning


def test_auth_url_with_host_is_refused_on_a_wildcard_rule() -> None:
    ann = {PREFIX + "auth-url": "http://$host.auth.svc/check"}
    result = run_build(ingress_class(), service("web"),
                       ingress("w", [("*.example.com", [path("/", "web", 80)])], annotations=ann))
    assert "InvalidIngress" in reasons(result)
    assert result.model.server("*.example.com") is None


# -- Round 2 (c)7: every location an Ingress produces carries its access annotations ----------

HTPASSWD = _secret("htpasswd", {"auth": b"bob:$apr1$x$y\n"}, kind="Opaque")
ACCESS: dict[str, tuple[dict[str, str], Callable[[object], bool]]] = {
    "allowlist": ({PREFIX + "allowlist-source-range": "10.0.0.0/8"},
                  lambda loc: loc.config.allowlist_source_range == ("10.0.0.0/8",)),  # type: ignore[attr-defined]
    "denylist": ({PREFIX + "denylist-source-range": "10.0.0.0/8"},
                 lambda loc: loc.config.denylist_source_range == ("10.0.0.0/8",)),  # type: ignore[attr-defined]
    "basic-auth": ({PREFIX + "auth-type": "basic", PREFIX + "auth-secret": "htpasswd"},
                   lambda loc: bool(loc.auth_file)),  # type: ignore[attr-defined]
    "external-auth": ({PREFIX + "auth-url": "http://auth.example.com/check"},
                      lambda loc: bool(loc.auth_location)),  # type: ignore[attr-defined]
    "rate-limit": ({PREFIX + "limit-rps": "5"}, lambda loc: loc.rate_limit is not None),  # type: ignore[attr-defined]
    "connection-limit": ({PREFIX + "limit-connections": "5"},
                         lambda loc: loc.rate_limit is not None),  # type: ignore[attr-defined]
}
SHAPES = {  # (rules, spec.defaultBackend, server host, location path)
    "rule-path": ([("a.test", [path("/", "web", 80)])], None, "a.test", "/"),
    "default-backend-only": ([], ("web", 80), "", "/"),
    "rules-and-default-backend": ([("a.test", [path("/api", "web", 80)])], ("web", 80), "a.test", "/"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("annotation", list(ACCESS))
def test_every_location_of_an_ingress_carries_its_access_annotations(annotation: str, shape: str) -> None:
    ann, present = ACCESS[annotation]
    rules, default_backend, host, where = SHAPES[shape]
    result = run_build(ingress_class(), service("web"), endpoint_slice("web", ["10.1.0.1"]), HTPASSWD,
                       ingress("guarded", rules, annotations=ann, default_backend=default_backend))
    assert not [p for p in result.problems if not p.warning], result.problems
    server = result.model.server(host)
    assert server is not None
    loc = next(loc for loc in server.locations if loc.path == where and loc.modifier == "")
    assert loc.ingress == "default/guarded" and present(loc), loc


def test_access_annotations_on_default_backend_locations_pass_nginx_t(tmp_path: Path) -> None:
    every = {k: val for ann, _ in ACCESS.values() for k, val in ann.items()}
    objs = [ingress_class(), service("web"), endpoint_slice("web", ["10.1.0.1"]), HTPASSWD]
    for i, (rules, default_backend, _, _) in enumerate(SHAPES.values()):
        rules = [(f"h{i}.test", paths) for _, paths in rules]
        objs.append(ingress(f"g{i}", rules, annotations=every, default_backend=default_backend))
    assert_nginx_accepts(run_build(*objs), tmp_path)


# -- Round 2 (b)4-6: a host belongs to the namespace of its oldest Ingress --------------------

EARLY, LATE = "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"
REGEX = {PREFIX + "use-regex": "true"}


def _two_tenants(evil_paths: list[dict[str, object]], bank_paths: list[dict[str, object]] | None = None,
                 evil_annotations: dict[str, str] | None = None, **bank_kw: object) -> BuildResult:
    return run_build(
        ingress_class(), service("web", ns="bank"), endpoint_slice("web", ["10.1.0.1"], ns="bank"),
        service("web", ns="evil"), endpoint_slice("web", ["10.6.6.6"], ns="evil"),
        ingress("site", [("bank.test", bank_paths or [path("/", "web", 80)])], ns="bank", created=EARLY,
                **bank_kw),  # type: ignore[arg-type]
        ingress("squat", [("bank.test", evil_paths)], ns="evil", created=LATE, annotations=evil_annotations))


def _served_by(result: BuildResult, host: str) -> set[str]:
    server = result.model.server(host)
    assert server is not None
    return {loc.ingress for loc in server.locations if loc.ingress}


@pytest.mark.parametrize(("evil_path", "annotations"), [
    (path("/login", "web", 80, "Exact"), None),
    (path("/", "web", 80, "Exact"), None),
    (path("/login", "web", 80), None),
    (path("/", "web", 80, "ImplementationSpecific"), REGEX),
    (path("/.*", "web", 80, "ImplementationSpecific"), REGEX),
], ids=["exact-login", "exact-root", "prefix-login", "regex-root", "regex-any"])
def test_another_namespace_never_wins_a_request_the_host_owner_matches(
        evil_path: dict[str, object], annotations: dict[str, str] | None) -> None:
    result = _two_tenants([evil_path], evil_annotations=annotations)
    assert _served_by(result, "bank.test") == {"bank/site"}
    assert "HostOwned" in reasons(result)


def test_another_namespace_may_add_paths_the_owner_does_not_match() -> None:
    result = _two_tenants([path("/api", "web", 80)], bank_paths=[path("/shop", "web", 80)])
    assert _served_by(result, "bank.test") == {"bank/site", "evil/squat"}
    assert "HostOwned" not in reasons(result)


def test_a_longer_prefix_under_the_owners_prefix_is_refused_but_a_shorter_one_is_not_stealing() -> None:
    # evil's /shop/cart would win bank's /shop/cart/...; evil's exact /x does not touch /shop
    result = _two_tenants([path("/shop/cart", "web", 80), path("/x", "web", 80, "Exact")],
                          bank_paths=[path("/shop", "web", 80)])
    assert "HostOwned" in reasons(result)
    server = result.model.server("bank.test")
    assert server is not None
    assert {(loc.path, loc.ingress) for loc in server.locations if loc.ingress == "evil/squat"} == {("/x", "evil/squat")}


def test_server_level_annotations_of_another_namespace_are_ignored() -> None:
    ca = _secret("ca", {"ca.crt": SM2["tls.crt"]}, kind="Opaque", ns="evil")
    ann = {PREFIX + "auth-tls-secret": "evil/ca", PREFIX + "server-alias": "alias.test"}
    result = run_build(
        ingress_class(), service("web", ns="bank"), endpoint_slice("web", ["10.1.0.1"], ns="bank"),
        service("web", ns="evil"), ca,
        ingress("site", [("bank.test", [path("/", "web", 80)])], ns="bank", created=EARLY),
        ingress("squat", [("bank.test", [path("/evil", "web", 80)])], ns="evil", created=LATE, annotations=ann))
    server = result.model.server("bank.test")
    assert server is not None and server.client_ca == "" and server.aliases == ()
    assert all(loc.status != 503 for loc in server.locations if loc.ingress == "bank/site")


def test_a_foreign_canary_that_came_first_does_not_block_the_owners_canary() -> None:
    canary = {PREFIX + "canary": "true", PREFIX + "canary-weight": "50"}
    result = run_build(
        ingress_class(), service("web", ns="bank"), endpoint_slice("web", ["10.1.0.1"], ns="bank"),
        service("beta", ns="bank"), endpoint_slice("beta", ["10.1.0.2"], ns="bank"),
        service("web", ns="evil"), endpoint_slice("web", ["10.6.6.6"], ns="evil"),
        ingress("squat", [("bank.test", [path("/")])], ns="evil", created="2025-06-01T00:00:00Z", annotations=canary),
        ingress("site", [("bank.test", [path("/")])], ns="bank", created=EARLY),
        ingress("beta", [("bank.test", [path("/", "beta", 80)])], ns="bank", created=LATE, annotations=canary))
    server = result.model.server("bank.test")
    assert server is not None
    root = next(loc for loc in server.locations if loc.path == "/" and loc.modifier == "")
    assert root.canary is not None and root.canary.upstream == "bank-beta-80"
    assert "CanaryConflict" not in reasons(result)


# -- Round 2 (d)10: the regex dialect bounds backtracking by construction ---------------------

@pytest.mark.parametrize("regex", ["/a*a*a*a*a*a*a*a*[^a]", "/a.*b.*c", "/a*a*b*b*x", "/(.*)/(.*)/x"])
def test_regex_paths_with_several_ambiguous_repeats_are_refused(regex: str) -> None:
    with pytest.raises(v.InvalidValue, match="repeats that can match what follows them"):
        v.regex_path(regex)


@pytest.mark.parametrize("regex", ["/api/(v[0-9]+)/(.*)", "/foo(/|$)(.*)", "/(.+)/(.+)", "/\\d+/\\w+",
                                   "/users/[^/]+/posts/[^/]+"])
def test_common_regex_paths_stay_allowed(regex: str) -> None:
    assert v.regex_path(regex) == regex


# -- Round 2 (a)2: accepted values render to what nginx -t accepts, or are refused -------------

LONG = "http://example.com/" + "a" * 4200


@pytest.mark.parametrize("annotations", [
    {PREFIX + "permanent-redirect": LONG},
    {PREFIX + "temporal-redirect": LONG},
    {PREFIX + "mirror-target": LONG},
    {PREFIX + "upstream-hash-by": "$request_uri" + "x" * 4200},
    {PREFIX + "enable-cors": "true", PREFIX + "cors-allow-headers": ",".join(["X-H"] * 1500)},
    {PREFIX + "enable-cors": "true", PREFIX + "cors-expose-headers": ",".join(["X-H"] * 1500)},
    {PREFIX + "enable-cors": "true", PREFIX + "cors-allow-origin": "https://" + "a" * 4200 + ".com"},
], ids=["permanent-redirect", "temporal-redirect", "mirror-target", "upstream-hash-by", "cors-allow-headers",
        "cors-expose-headers", "cors-allow-origin"])
def test_a_value_longer_than_an_nginx_parameter_is_refused(annotations: dict[str, str]) -> None:
    cfg, problems = parse_annotations(annotations, False)
    assert [p for p in problems if not p.warning], cfg
    assert all(len(str(p)) < 600 for p in problems)  # the value is not copied whole into logs and Events


def _renders_or_is_refused(result: BuildResult, tmp_path: Path, name: str) -> None:
    if not [p for p in result.problems if p.name == name and not p.warning]:
        assert_nginx_accepts(result, tmp_path)


def test_default_backend_annotation_to_an_external_name_with_the_path_service_missing(tmp_path: Path) -> None:
    result = run_build(ingress_class(), service("ext", type="ExternalName", externalName="api.example.com"),
                       ingress("x", [("x.test", [path("/", "missing", 80)])],
                               annotations={PREFIX + "default-backend": "ext"}))
    _renders_or_is_refused(result, tmp_path, "x")


def test_auth_signin_on_a_location_that_answers_503(tmp_path: Path) -> None:
    ann = {PREFIX + "auth-url": "http://auth.example.com/check?u=$escaped_request_uri"}
    result = run_build(ingress_class(), ingress("x", [("x.test", [path("/", "missing", 80)])], annotations=ann))
    _renders_or_is_refused(result, tmp_path, "x")


def test_auth_response_headers_with_a_spec_default_backend(tmp_path: Path) -> None:
    ann = {PREFIX + "auth-url": "http://auth.example.com/check", PREFIX + "auth-response-headers": "X-User"}
    result = run_build(ingress_class(), service("web"), endpoint_slice("web", ["10.1.0.1"]),
                       ingress("x", [("x.test", [path("/api", "web", 80)])], annotations=ann,
                               default_backend=("web", 80)),
                       ingress("y", [], annotations=ann, default_backend=("web", 80)))
    _renders_or_is_refused(result, tmp_path, "x")


# -- Round 2 (d)8: every list in every object is bounded ---------------------------------------

def test_an_endpoint_slice_over_the_api_servers_bounds_is_refused() -> None:
    from ingressctl.objects import ObjectError

    with pytest.raises(ObjectError, match="at most 1000"):
        endpoint_slice("web", [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(1001)])
    endpoint_slice("web", [f"10.0.{i // 256}.{i % 256}" for i in range(1000)])  # the API server's own bound


def test_auth_response_headers_are_bounded_per_ingress() -> None:
    many = ",".join(f"X-H{i}" for i in range(65))
    _, problems = parse_annotations({PREFIX + "auth-url": "http://a.example.com/", PREFIX + "auth-response-headers":
                                     many}, False)
    assert [p for p in problems if not p.warning]
    ann = {PREFIX + "auth-url": "http://a.example.com/", PREFIX + "auth-response-headers":
           ",".join(f"X-H{i}" for i in range(64))}
    result = run_build(ingress_class(), service(), endpoint_slice(),
                       ingress("x", [("x.test", [path(f"/p{i}") for i in range(40)])], annotations=ann))
    assert "InvalidIngress" in reasons(result)  # 40 paths x 64 headers > 2,000 auth_request_set lines


def test_tls_hosts_count_with_paths_toward_the_per_ingress_bound() -> None:
    hosts = [f"h{i}.test" for i in range(1001)]
    result = run_build(ingress_class(), service(), endpoint_slice(),
                       ingress("x", [("a.test", [path("/")])], tls=[{"hosts": hosts, "secretName": "s"}]))
    assert "InvalidIngress" in reasons(result)


def test_a_certificate_chain_is_bounded() -> None:
    one = _secret("one", {"tls.crt": SM2["tls.crt"] * 11, "tls.key": SM2["tls.key"]})
    result = run_build(ingress_class(), service(), endpoint_slice(), one, _tls_ingress("x", "x.test", "one"))
    assert any(p.reason == "InvalidCertificate" and "at most 10" in p.message for p in result.problems), \
        result.problems


def test_server_aliases_are_bounded() -> None:
    _, problems = parse_annotations({PREFIX + "server-alias": ",".join(f"a{i}.test" for i in range(65))}, False)
    assert [p for p in problems if not p.warning]
