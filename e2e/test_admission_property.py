"""Property: every Ingress that admission allows renders a configuration the real `nginx -t` accepts.

Hypothesis draws two kinds of Ingress, evenly: clean ones, made only of valid pieces (hosts,
paths, every annotation's valid values from tests/test_annotations_parse.py, with the
annotations they need), which validation nearly always allows, and spoiled ones, where any
piece may carry a breakout of tests/injection_payloads.py or random text, which it mostly
denies. For each one allowed, the candidate's configuration is rendered for a real prefix
and checked by `nginx -t` (here, in the test; never in the webhook). The examples are
derandomized, so the counts asserted at the end are the same on every run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingressctl.admission.validate import ValidateOptions, Validator
from ingressctl.controller import model_files
from ingressctl.ingress.annotations import PREFIX, REGISTRY
from ingressctl.ingress.build import BuildOptions
from ingressctl.nginx.render import RenderContext
from ingressctl.objects import Ingress, parse_ingress, parse_object
from ingressctl.store import Snapshot
from tests.admission_fixtures import endpoint_slice, ingress, ingress_class, service
from tests.injection_payloads import BREAKOUTS
from tests.test_annotations_parse import COMPANIONS, GOOD

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def opaque_secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": "default"},
            "stringData": data}


def tls_secret(name: str, host: str) -> dict[str, Any]:
    crt, key = self_signed(host)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"tls.crt": crt.decode(), "tls.key": key.decode()}}


HOSTS = ["a.example.com", "b.example.com", "*.apps.example.com", "x-1.example.org", "localhost"]
REGEX_PATHS = ["/(.*)", "/api/v[0-9]+/.*", "/$"]  # allowed only with use-regex (a clean Ingress sets it)
PATHS = ["/", "/api", "/api/", "/v1/users", "/a-b_c.d~e", "/%41", "/x:y@z", *REGEX_PATHS]
# Valid values of every registered annotation (the annotation tests' own table), and the ones they need.
GOOD_VALUES: dict[str, list[str]] = {}
for _name, _value, _ in GOOD:
    GOOD_VALUES.setdefault(_name, []).append(_value)
GOOD_VALUES["auth-tls-secret"].append("client-ca")  # the table's own is in another namespace (denied)
hostile = st.sampled_from(sorted(BREAKOUTS.values()))
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)


def values(valid: list[str], clean: bool) -> st.SearchStrategy[str]:
    """A valid value; unless `clean`, also a valid value with a breakout appended, or random text."""
    good = st.sampled_from(valid)
    if clean:
        return good
    return st.one_of(good, good.flatmap(lambda g: hostile.map(lambda h: g + h)), text)


def annotations(clean: bool) -> st.SearchStrategy[dict[str, str]]:
    names = sorted(n for n in REGISTRY if not (clean and REGISTRY[n].snippet))  # snippets: off, so denied

    def values_for(chosen: list[str]) -> st.SearchStrategy[dict[str, str]]:
        fields = {PREFIX + c: st.just(v) for n in chosen for c, v in COMPANIONS.get(n, {}).items()}
        fields.update({PREFIX + n: values(GOOD_VALUES[n], clean) for n in chosen})
        return st.fixed_dictionaries(fields)

    return st.lists(st.sampled_from(names), max_size=4, unique=True).flatmap(values_for)


@st.composite
def candidates(draw: Any, clean: bool | None = None) -> dict[str, Any]:
    """A clean Ingress (only valid pieces, mostly allowed) or a spoiled one (mostly denied), evenly."""
    clean = draw(st.booleans()) if clean is None else clean
    host = draw(st.one_of(st.none(), values(HOSTS, clean)))
    paths = draw(st.lists(st.one_of(values(PATHS, clean), *([] if clean else [text.map(lambda t: "/" + t)])),
                          min_size=1, max_size=3, unique=True))
    types = [draw(st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"])) for _ in paths]
    if clean:  # regex paths are ImplementationSpecific ones
        types = ["ImplementationSpecific" if p in REGEX_PATHS else t for p, t in zip(paths, types, strict=True)]
    raw = ingress("cand", host=host, path=paths[0], path_type=types[0], annotations=draw(annotations(clean)),
                  created=None)
    raw["spec"]["rules"][0]["http"]["paths"] += [
        {"path": p, "pathType": t, "backend": {"service": {"name": "web", "port": {"number": 80}}}}
        for p, t in zip(paths[1:], types[1:], strict=True)]
    if draw(st.booleans()) or (clean and any(p in REGEX_PATHS for p in paths)):
        raw["metadata"]["annotations"][PREFIX + "use-regex"] = "true"
    if host is not None and draw(st.booleans()):
        raw["spec"]["tls"] = [{"hosts": [host], "secretName": draw(st.sampled_from(["shop-tls", "missing-tls"]))}]
    return raw


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, Path]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: run scripts/setup.sh", pytrace=False)
    prefix = tmp_path_factory.mktemp("admission-nginx") / "nginx"
    for d in ("certs", "tmp", "logs"):
        (prefix / d).mkdir(parents=True)
    crt, key = self_signed("ingressctl-default")
    (prefix / "certs" / "default.pem").write_bytes(crt + key)
    ca_crt, _ = self_signed("client-ca")
    objs = [ingress_class(), service(), endpoint_slice(), tls_secret("shop-tls", "a.example.com"),
            opaque_secret("users", {"auth": "alice:$apr1$9Cv/OMGj$ZomWQzuQbL.3TRCS81A1g/\n"}),
            opaque_secret("client-ca", {"ca.crt": ca_crt.decode()}),
            ingress("existing", host="a.example.com", path="/shop")]
    return Snapshot.of([parse_object(o) for o in objs]), prefix


def nginx_test(validator: Validator, snap: Snapshot, cand: Ingress, prefix: Path) -> subprocess.CompletedProcess[str]:
    ctx = RenderContext(prefix=str(prefix), http_port=18080, https_port=18443, listen=("127.0.0.1:",))
    model, text = validator.render(snap, cand, ctx)
    for name, content in model_files(model).items():  # certificates, htpasswd files, client CAs
        (prefix / "certs" / name).write_bytes(content)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return subprocess.run([NGINX, "-t", "-q", "-p", str(prefix), "-c", str(conf)], capture_output=True,
                          text=True, timeout=30, check=False)


def judge(validator: Validator, snap: Snapshot, raw: dict[str, Any], prefix: Path) -> bool:
    """The verdict on `raw`; if allowed, its configuration must pass the real `nginx -t`."""
    verdict = validator.check(snap, raw)
    if not verdict.allowed:
        assert verdict.reasons, "a denial must say why"
        return False
    result = nginx_test(validator, snap, parse_ingress(raw), prefix)
    assert result.returncode == 0, f"nginx -t refused an allowed Ingress:\n{result.stderr}\n{raw}"
    return True


EXAMPLES = 80
# Always checked: client certificates (needs the TLS host), basic auth, external auth, rate
# limits with an allow-list, CORS, a mirror and a regex rewrite, all in one server.
EVERYTHING_AT_ONCE = ingress("all", host="a.example.com", path="/api/(v[0-9]+)/(.*)", path_type="ImplementationSpecific",
                             created=None, tls=[{"hosts": ["a.example.com"], "secretName": "shop-tls"}], annotations={
                                 PREFIX + k: val for k, val in {
                                     "auth-tls-secret": "client-ca", "auth-tls-verify-client": "optional",
                                     "auth-type": "basic", "auth-secret": "users", "rewrite-target": "/$2",
                                     "limit-rps": "10", "limit-whitelist": "127.0.0.1, ::1", "enable-cors": "true",
                                     "mirror-target": "https://mirror.example.com/", "proxy-body-size": "8m"}.items()})


def test_what_admission_allows_nginx_accepts(world: tuple[Snapshot, Path]) -> None:
    snap, prefix = world
    validator = Validator(ValidateOptions(build=BuildOptions(now=NOW)))
    outcomes: Counter[tuple[str, str]] = Counter()

    # derandomize: the same examples on every run, so the counts below are stable. Clean and
    # spoiled Ingresses are drawn in two runs of EXAMPLES // 2 each (one draw of booleans let
    # the registry's size decide how many of each there were).
    def run(clean: bool) -> None:
        @settings(max_examples=EXAMPLES // 2, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(candidates(clean))
        def check(raw: dict[str, Any]) -> None:
            allowed = judge(validator, snap, raw, prefix)
            outcomes["clean" if clean else "spoiled", "allowed" if allowed else "denied"] += 1

        check()

    assert judge(validator, snap, EVERYTHING_AT_ONCE, prefix)
    run(clean=True)
    run(clean=False)
    # The property was exercised on many allowed Ingresses (clean ones are nearly all allowed),
    # and the hostile half was mostly refused: validation is neither refusing nor passing everything.
    assert outcomes["clean", "allowed"] >= EXAMPLES // 4, outcomes
    assert outcomes["spoiled", "denied"] >= EXAMPLES // 4, outcomes


def test_the_property_fails_when_nginx_refuses_an_allowed_ingress(world: tuple[Snapshot, Path]) -> None:
    """The oracle is real: a configuration nginx cannot load makes `judge` fail."""
    snap, prefix = world

    class Misrendering(Validator):
        def render(self, snap: Snapshot, candidate: Ingress, ctx: RenderContext | None = None) -> tuple[Any, str]:
            model, text = super().render(snap, candidate, ctx)
            return model, text.replace("server_name ", "server_nam ", 1)

    options = ValidateOptions(build=BuildOptions(now=NOW))
    raw = ingress("plain", host="b.example.com", path="/ok", created=None)
    assert judge(Validator(options), snap, raw, prefix)
    with pytest.raises(AssertionError, match="nginx -t refused an allowed Ingress"):
        judge(Misrendering(options), snap, raw, prefix)
