"""e2e: basic auth, external auth, client certificates, rate limits and CORS annotations.

One `ingressctl run` (real nginx) serves every Ingress of this module. The external auth
backend and the certificates (a CA of our own, clients signed by it, one self-signed
impostor) are made here; the htpasswd hashes are {SHA} (computed in Python) and apr1
(`openssl passwd -apr1`), two schemes nginx's auth_basic reads.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import urllib.parse
from collections import Counter

import pytest

from .annotation_kit import (
    KeyPair,
    ScriptedServer,
    Seen,
    ingress,
    make_cert,
    secret,
    service,
    started_controller,
)
from .harness import Backends


def _sha(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def _apr1(password: str) -> str:
    out = subprocess.run(["openssl", "passwd", "-apr1", password], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _auth_script(req: Seen) -> tuple[int, dict[str, str], bytes]:
    token = req.headers.get("authorization", "")
    if token == "Bearer good":
        return 200, {"X-User": "alice", "X-Secret-Internal": "leak"}, b""
    if token == "Bearer forbidden":
        return 403, {}, b""
    return 401, {}, b""


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def certs() -> dict[str, KeyPair]:
    ca = make_cert("Test Client CA", ca=True)
    return {"ca": ca, "alice": make_cert("alice", issuer=ca), "bob": make_cert("bob", issuer=ca),
            "mallory": make_cert("alice")}


@pytest.fixture(scope="module")
def auth_server():
    s = ScriptedServer(_auth_script)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ctl(certs, auth_server):
    b = Backends()
    a = [("/", "Prefix", "a")]
    check = f"http://127.0.0.1:{auth_server.port}/check"
    basic = {"auth-type": "basic", "auth-secret": "htpasswd", "auth-realm": "Staff only"}
    m = {
        "svc-a.yaml": service("a", [b.start("a")]),
        "secrets.yaml": secret("htpasswd", {"auth": f"alice:{_sha('wonderland')}\nbob:{_apr1('builder')}\n".encode()}),
        "map.yaml": secret("users", {"carol": _sha("secret").encode()}),
        "ca.yaml": secret("client-ca", {"ca.crt": certs["ca"].cert_pem}),
        "basic.yaml": ingress("basic", "basic.test", a, basic),
        "basicmap.yaml": ingress("basicmap", "basicmap.test", a, {
            "auth-type": "basic", "auth-secret": "users", "auth-secret-type": "auth-map"}),
        "nosecret.yaml": ingress("nosecret", "nosecret.test", a, {**basic, "auth-secret": "missing"}),
        "ext.yaml": ingress("ext", "ext.test", a, {"auth-url": check, "auth-response-headers": "X-User"}),
        "extsignin.yaml": ingress("extsignin", "extsignin.test", a, {
            "auth-url": check, "auth-signin": "https://login.example.com/start", "auth-method": "POST"}),
        "mtls.yaml": ingress("mtls", "mtls.test", a, {
            "auth-tls-secret": "default/client-ca", "auth-tls-verify-client": "on",
            "auth-tls-pass-certificate-to-upstream": "true", "auth-tls-match-cn": "CN=alice"}),
        "mtlsopt.yaml": ingress("mtlsopt", "mtls-optional.test", a, {
            "auth-tls-secret": "client-ca", "auth-tls-verify-client": "optional"}),
        "mtlsnoca.yaml": ingress("mtlsnoca", "mtls-noca.test", a, {
            "auth-tls-secret": "client-ca", "auth-tls-verify-client": "optional_no_ca",
            "auth-tls-pass-certificate-to-upstream": "true"}),
        "rps.yaml": ingress("rps", "rps.test", a, {"limit-rps": "2"}),
        "rpsfree.yaml": ingress("rpsfree", "rps-exempt.test", a, {"limit-rps": "1",
                                                                  "limit-whitelist": "127.0.0.0/8"}),
        "cors.yaml": ingress("cors", "cors.test", a, {"enable-cors": "true"}),
        "corslist.yaml": ingress("corslist", "cors-list.test", a, {
            "enable-cors": "true", "cors-allow-origin": "https://app.example.com, https://*.example.org",
            "cors-allow-methods": "GET, POST", "cors-allow-headers": "X-Token", "cors-allow-credentials": "false",
            "cors-expose-headers": "X-Trace", "cors-max-age": "600"}),
    }
    try:
        yield from started_controller(m,
                                      lambda c: c.get("cors.test").status == 200)
    finally:
        b.stop()


def test_basic_auth_401_then_200(ctl):
    r = ctl.get("basic.test", "/")
    assert r.status == 401 and r.headers["www-authenticate"] == 'Basic realm="Staff only"'
    assert ctl.get("basic.test", headers=_basic("alice", "wrong")).status == 401
    assert ctl.get("basic.test", headers=_basic("nobody", "wonderland")).status == 401
    r = ctl.get("basic.test", headers=_basic("alice", "wonderland"))  # {SHA}
    assert (r.status, r.backend) == (200, "a")
    assert ctl.get("basic.test", headers=_basic("bob", "builder")).status == 200  # apr1


def test_basic_auth_from_an_auth_map_secret(ctl):
    assert ctl.get("basicmap.test").status == 401
    assert ctl.get("basicmap.test", headers=_basic("carol", "secret")).status == 200


def test_basic_auth_with_a_missing_secret_fails_closed(ctl):
    assert ctl.get("nosecret.test", headers=_basic("alice", "wonderland")).status == 503
    assert "Ingress default/nosecret: AuthSecretNotFound" in ctl.log_path.read_text()


def test_external_auth_allows_denies_and_passes_headers(ctl, auth_server):
    assert ctl.get("ext.test", "/p").status == 401
    assert ctl.get("ext.test", "/p", headers={"Authorization": "Bearer forbidden"}).status == 403
    before = len(auth_server.seen)
    r = ctl.get("ext.test", "/p?q=1", method="POST", body=b"body", headers={"Authorization": "Bearer good"})
    assert (r.status, r.backend) == (200, "a")
    upstream = r.json()
    assert upstream["headers"]["x-user"] == "alice"  # auth-response-headers reach the upstream
    assert "x-secret-internal" not in upstream["headers"]  # others do not
    assert upstream["body_bytes"] == 4
    check = auth_server.seen[before]
    assert (check.method, check.path, check.body) == ("GET", "/check", b"")  # the body is not sent to auth
    assert check.headers["x-original-uri"] == "/p?q=1" and check.headers["x-original-method"] == "POST"
    assert check.headers["x-original-url"] == "http://ext.test/p?q=1"


def test_external_auth_signin_redirect_and_method(ctl, auth_server):
    r = ctl.get("extsignin.test", "/deep/link?x=1")
    assert r.status == 302
    # rd: the original URL, its request URI percent-encoded ($escaped_request_uri, Lua)
    assert r.headers["location"] == "https://login.example.com/start?rd=http://extsignin.test%2Fdeep%2Flink%3Fx%3D1"
    assert auth_server.seen[-1].method == "POST"  # auth-method
    r = ctl.get("extsignin.test", "/", headers={"Authorization": "Bearer good"})
    assert (r.status, r.backend) == (200, "a")


def test_mtls_accepts_only_certificates_from_the_ca_with_the_cn(ctl, certs, tmp_path):
    def get(who: str | None):
        cert = certs[who].files(tmp_path, who) if who else None
        return ctl.get("mtls.test", "/", tls=True, client_cert=cert)

    assert get(None).status == 400  # no certificate sent
    assert get("mallory").status == 400  # same CN, not signed by the CA
    assert get("bob").status == 403  # signed by the CA, CN does not match auth-tls-match-cn
    r = get("alice")
    assert (r.status, r.backend) == (200, "a")
    passed = urllib.parse.unquote(r.json()["headers"]["ssl-client-cert"])
    assert passed.strip() == certs["alice"].cert_pem.decode().strip()


def test_mtls_optional_lets_clients_without_certificate_in(ctl, certs, tmp_path):
    assert ctl.get("mtls-optional.test", "/", tls=True).status == 200
    cert = certs["bob"].files(tmp_path, "bob")
    assert ctl.get("mtls-optional.test", "/", tls=True, client_cert=cert).status == 200
    assert ctl.get("mtls.test", "/", tls=True).status == 400  # the other host on the same port still requires


def test_503_above_the_rate_limit(ctl):
    got = Counter(ctl.get("rps.test").status for _ in range(30))
    assert set(got) == {200, 503}, got
    # limit-rps 2 with the default burst multiplier 5: 1 + 10 at once, maybe a token more
    assert 11 <= got[200] <= 13, got


def test_limit_whitelist_is_exempt(ctl):
    got = Counter(ctl.get("rps-exempt.test").status for _ in range(30))
    assert got == Counter({200: 30})


def test_cors_preflight_with_defaults(ctl):
    r = ctl.get("cors.test", "/api", method="OPTIONS", headers={
        "Origin": "https://any.example", "Access-Control-Request-Method": "PUT"})
    assert r.status == 204 and r.backend == ""  # answered by nginx, not proxied
    h = r.headers
    assert h["access-control-allow-origin"] == "*"
    assert h["access-control-allow-methods"] == "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    assert "Authorization" in h["access-control-allow-headers"]
    assert h["access-control-allow-credentials"] == "true" and h["access-control-max-age"] == "1728000"
    r = ctl.get("cors.test", "/api", headers={"Origin": "https://any.example"})
    assert (r.status, r.backend, r.headers["access-control-allow-origin"]) == (200, "a", "*")


@pytest.mark.parametrize("origin, allowed", [
    ("https://app.example.com", "https://app.example.com"),
    ("https://a.example.org", "https://a.example.org"),  # *. is one label
    ("https://a.b.example.org", None),
    ("https://example.org", None),
    ("http://app.example.com", None),  # scheme matters
    ("https://evil.com", None),
])
def test_cors_origin_list(ctl, origin, allowed):
    r = ctl.get("cors-list.test", "/", method="OPTIONS", headers={"Origin": origin})
    assert r.status == 204
    assert r.headers.get("access-control-allow-origin") == allowed
    assert r.headers["access-control-allow-methods"] == "GET, POST"
    assert r.headers["access-control-allow-headers"] == "X-Token"
    assert r.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in r.headers
    r = ctl.get("cors-list.test", "/", headers={"Origin": origin})
    assert (r.status, r.headers.get("access-control-allow-origin")) == (200, allowed)
    assert r.headers["access-control-expose-headers"] == "X-Trace"


def test_mtls_optional_no_ca_passes_any_certificate_on(ctl, certs, tmp_path):
    r = ctl.get("mtls-noca.test", "/", tls=True, client_cert=certs["mallory"].files(tmp_path, "mallory"))
    assert (r.status, r.backend) == (200, "a")  # not signed by the CA, still let in: the backend decides
    passed = urllib.parse.unquote(r.json()["headers"]["ssl-client-cert"])
    assert passed.strip() == certs["mallory"].cert_pem.decode().strip()
    assert ctl.get("mtls-noca.test", "/", tls=True).status == 200
