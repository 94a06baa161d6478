"""Admission verdicts: injection payloads denied with a reason, valid Ingresses allowed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ingressctl.ingress.annotations import REGISTRY, security_category
from ingressctl.objects import parse_ingress

from .admission_fixtures import PREFIX, ingress, ingress_class, snapshot, validator
from .injection_payloads import PAYLOADS, SAFE_VALUES, Payload
from .test_annotations_parse import COMPANIONS, GOOD


def place(where: str, value: str, annotation: str = "") -> dict[str, Any]:
    """An otherwise valid Ingress carrying `value` in the field `where`."""
    if where == "path":
        return ingress("cand", host="b.example.com", path=value)
    if where == "exact-path":
        return ingress("cand", host="b.example.com", path=value, path_type="Exact")
    if where == "regex-path":
        return ingress("cand", host="b.example.com", path=value, path_type="ImplementationSpecific",
                       annotations={PREFIX + "use-regex": "true"})
    if where == "host":
        return ingress("cand", host=value)
    if where == "tls-host":
        return ingress("cand", host="b.example.com", tls=[{"hosts": [value], "secretName": "b-tls"}])
    if where == "secret":
        return ingress("cand", host="b.example.com", tls=[{"hosts": ["b.example.com"], "secretName": value}])
    if where == "service":
        return ingress("cand", host="b.example.com", service=value)
    if where == "annotation":
        return ingress("cand", host="b.example.com", annotations={PREFIX + annotation: value})
    raise AssertionError(where)


# What the reason must say for each field (besides quoting the value).
EXPECTED_REASON = {
    "path": "InvalidIngress: path ", "exact-path": "InvalidIngress: path ", "regex-path": "InvalidIngress: regex path",
    "host": "is not a valid DNS name", "tls-host": "is not a valid DNS name",
    "secret": "is not a valid Kubernetes name", "service": "is not a valid Kubernetes name",
}


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{p.cve}-{p.id}")
def test_injection_payload_is_denied(payload: Payload) -> None:
    v = validator()
    snap = snapshot(ingress("existing", host="a.example.com"))
    verdict = v.check(snap, place(payload.where, payload.value, payload.annotation))
    if (payload.where == "annotation" and payload.annotation not in REGISTRY and "snippet" not in payload.annotation
            and not security_category(payload.annotation)):
        # Not implemented (yet): the annotation must be ignored, loudly, and never rendered.
        assert verdict.allowed, verdict
        assert any(payload.full_annotation in w and "not supported" in w for w in verdict.warnings)
        _, text = v.render(snap, parse_ingress(place(payload.where, payload.value, payload.annotation)))
        for marker in ("evil.so", "owned", "os.execute", "/proc/", "/etc/passwd", "http_x_cmd", SECRETS):
            assert marker not in text
        return
    assert not verdict.allowed, verdict
    if payload.where == "annotation":  # the annotation named, with the value as written
        expected = [f"InvalidAnnotation: annotation {payload.full_annotation}={payload.value!r}"]
    else:  # the field's rule, with the value quoted (a too-long regex is not repeated)
        expected = [EXPECTED_REASON[payload.where], repr(payload.value) if len(payload.value) <= 256 else "longer"]
    assert any(all(e in r for e in expected) for r in verdict.reasons), (expected, verdict.reasons)


SECRETS = "/var/run/secrets"


@pytest.mark.parametrize("where", sorted(SAFE_VALUES))
def test_same_fields_with_safe_values_are_allowed(where: str) -> None:
    verdict = validator().check(snapshot(), place(where, SAFE_VALUES[where]))
    assert verdict.allowed, verdict


VALID: dict[str, dict[str, Any]] = {
    "prefix root": ingress("v", host="shop.example.com"),
    "exact path": ingress("v", path="/healthz", path_type="Exact"),
    "implementation specific without regex": ingress("v", path="/static", path_type="ImplementationSpecific"),
    "regex with use-regex": ingress("v", path="/api/v[0-9]+/(users|groups)", path_type="ImplementationSpecific",
                                    annotations={PREFIX + "use-regex": "true"}),
    "wildcard host": ingress("v", host="*.apps.example.com"),
    "no host": ingress("v", host=None, path="/catch"),
    "named port": ingress("v", host="v.example.com", port="http"),
    "url-ish path characters": ingress("v", path="/a-b_c.d~e/%20/x:y@z=1,2+3!"),
    "timeouts and size": ingress("v", host="v.example.com", annotations={
        PREFIX + "proxy-read-timeout": "120", PREFIX + "proxy-connect-timeout": "5s",
        PREFIX + "proxy-body-size": "8m", PREFIX + "backend-protocol": "GRPC"}),
    "ssl redirect off": ingress("v", host="v.example.com", annotations={PREFIX + "ssl-redirect": "false"}),
    "other annotations are ignored": ingress("v", host="v.example.com", annotations={"example.com/owner": "team; rm -rf /"}),
    "same host other path": ingress("v", host="a.example.com", path="/other"),
    "same path other host": ingress("v", host="c.example.com", path="/"),
    "same path other type": ingress("v", host="a.example.com", path="/", path_type="Exact"),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_ingress_is_allowed(name: str) -> None:
    verdict = validator().check(snapshot(ingress("existing", host="a.example.com")), VALID[name])
    assert verdict.allowed, verdict
    assert verdict.reasons == ()


# Every valid value of every annotation (the annotation tests' table), on an Ingress of its own.
# Some need a path with capture groups; snippets are checked with snippets enabled.
NEEDS_PATH = {"rewrite-target": ("/api/(v[0-9]+)/(.*)", "ImplementationSpecific")}
DENIED_BY_DESIGN = {("auth-tls-secret", "app/client-ca"): "SecretNamespace: auth-tls Secret app/client-ca is in "
                    "another namespace",
                    ("ssl-passthrough", "true"): "SSLPassthroughDisabled: ssl-passthrough needs the controller's "
                    "--enable-ssl-passthrough"}
GOOD_ANNOTATIONS = [(n, val) for n, val, _ in GOOD if (n, val) not in DENIED_BY_DESIGN]


def annotated(name: str, value: str) -> dict[str, Any]:
    ann = {PREFIX + k: val for k, val in COMPANIONS.get(name, {}).items()} | {PREFIX + name: value}
    path, path_type = NEEDS_PATH.get(name, ("/", "Prefix"))
    return ingress("cand", host="b.example.com", annotations=ann, path=path, path_type=path_type)


@pytest.mark.parametrize(("name", "value"), GOOD_ANNOTATIONS, ids=[f"{n}={val}" for n, val in GOOD_ANNOTATIONS])
def test_every_valid_annotation_value_is_allowed(name: str, value: str) -> None:
    v = validator(allow_snippets=REGISTRY[name].snippet)
    verdict = v.check(snapshot(ingress("existing", host="a.example.com")), annotated(name, value))
    assert verdict.allowed, verdict


@pytest.mark.parametrize(("name", "value"), sorted(DENIED_BY_DESIGN))
def test_valid_values_denied_for_what_they_point_at(name: str, value: str) -> None:
    verdict = validator().check(snapshot(), annotated(name, value))
    assert not verdict.allowed
    assert verdict.reasons[0].startswith(DENIED_BY_DESIGN[(name, value)]), verdict.reasons


def test_unimplemented_snippet_annotations_follow_the_snippet_policy() -> None:
    raw = ingress("s", host="b.example.com", annotations={PREFIX + "stream-snippet": "server { listen 1; }"})
    denied = validator().check(snapshot(), raw)
    assert denied.reasons == ((f"InvalidAnnotation: annotation {PREFIX}stream-snippet='server {{ listen 1; }}': "
                               "snippet annotations are disabled (ConfigMap allow-snippet-annotations: false)"),)
    allowed = validator(allow_snippets=True).check(snapshot(), raw)
    assert allowed.allowed and any("not supported by ingressctl, ignored" in w for w in allowed.warnings)


def test_canary_before_its_main_ingress_is_allowed_with_a_warning() -> None:
    canary = ingress("canary", host="b.example.com", annotations={PREFIX + "canary": "true",
                                                                   PREFIX + "canary-weight": "10"})
    verdict = validator().check(snapshot(), canary)
    assert verdict.allowed, verdict
    assert any(w.startswith("CanaryWithoutMain: no main Ingress serves host b.example.com path /")
               for w in verdict.warnings), verdict.warnings


def test_tls_secret_missing_is_allowed_with_a_warning() -> None:
    raw = ingress("v", host="b.example.com", tls=[{"hosts": ["b.example.com"], "secretName": "later"}])
    verdict = validator().check(snapshot(), raw)
    assert verdict.allowed
    assert any("SecretNotFound" in w and "default/later" in w for w in verdict.warnings), verdict.warnings


def test_missing_service_is_a_warning_not_a_denial() -> None:
    verdict = validator().check(snapshot(), ingress("v", service="not-yet"))
    assert verdict.allowed
    assert any("Service default/not-yet not found" in w for w in verdict.warnings)


def test_conflict_names_the_other_ingress() -> None:
    snap = snapshot(ingress("first", namespace="team-a", host="a.example.com", path="/api"))
    verdict = validator().check(snap, ingress("second", namespace="team-b", host="a.example.com",
                                              path="/api/", created=None))
    assert not verdict.allowed
    assert verdict.reasons == ("host a.example.com path /api (prefix) is already defined in Ingress team-a/first",)


def test_update_of_the_same_ingress_does_not_conflict_with_itself() -> None:
    existing = ingress("same", host="a.example.com", path="/api")
    updated = copy.deepcopy(existing)
    updated["metadata"]["annotations"][PREFIX + "proxy-read-timeout"] = "30"
    assert validator().check(snapshot(existing), updated).allowed


def test_hostless_rule_conflicts_with_hostless_rule() -> None:
    snap = snapshot(ingress("first", host=None, path="/x"))
    verdict = validator().check(snap, ingress("second", host=None, path="/x", created=None))
    assert verdict.reasons == ("host * path /x (prefix) is already defined in Ingress default/first",)


def test_an_invalid_existing_ingress_does_not_block_its_paths() -> None:
    bad = ingress("bad", host="a.example.com", path="/x", annotations={PREFIX + "proxy-body-size": "lots"})
    assert validator().check(snapshot(bad), ingress("good", host="a.example.com", path="/x")).allowed


def test_ingress_of_another_controller_is_allowed_untouched() -> None:
    snap = snapshot(ingress_class("other", controller="example.com/other"))
    verdict = validator().check(snap, ingress("x", class_name="other", path="/$; load_module x"))
    assert verdict.allowed
    assert "not served by this controller" in verdict.warnings[0]


@pytest.mark.parametrize("raw,reason", [
    ({"kind": "Ingress", "metadata": {"name": "x"}, "spec": {}}, "either defaultBackend or rules"),
    ({"kind": "Ingress", "metadata": {"name": "x"}, "spec": {"rules": "nope"}}, "spec.rules: expected a list"),
    ({"kind": "Ingress", "metadata": {}}, "metadata.name: is required"),
    ({"kind": "Service", "metadata": {"name": "x"}}, "expected an Ingress or HTTPRoute, got Service"),
    ({"kind": "Ingress", "metadata": {"name": "x"}, "spec": {"rules": [{"host": "a.example.com", "http": {
        "paths": [{"path": "/", "pathType": "Regex", "backend": {}}]}}]}}, "is not Exact, Prefix"),
])
def test_schema_errors_are_denied(raw: dict[str, Any], reason: str) -> None:
    raw["spec"] = raw.get("spec", {}) | ({"ingressClassName": "nginx"} if raw["kind"] == "Ingress" else {})
    verdict = validator().check(snapshot(), raw)
    assert not verdict.allowed
    assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_regex_path_needs_use_regex() -> None:
    raw = ingress("r", path="/api/(.*)", path_type="ImplementationSpecific")
    verdict = validator().check(snapshot(), raw)
    assert not verdict.allowed
    assert "path '/api/(.*)'" in verdict.reasons[0]


def test_check_all_charges_a_conflict_to_the_newer_ingress() -> None:
    old = ingress("old", path="/p", created="2020-01-01T00:00:00Z")
    new = ingress("new", path="/p", created="2024-01-01T00:00:00Z")
    verdicts = {v.ingress: v for v in validator().check_all(snapshot(old, new))}
    assert verdicts["default/old"].allowed
    assert not verdicts["default/new"].allowed
    assert "Ingress default/old" in verdicts["default/new"].reasons[0]


def test_host_index_follows_snapshot_changes() -> None:
    v = validator()
    first = snapshot(ingress("a", host="a.example.com", path="/p"))
    assert not v.check(first, ingress("b", host="a.example.com", path="/p", created=None)).allowed
    moved = snapshot(ingress("a", host="z.example.com", path="/p"))
    assert v.check(moved, ingress("b", host="a.example.com", path="/p", created=None)).allowed
    assert not v.check(moved, ingress("b", host="z.example.com", path="/p", created=None)).allowed
    assert v.check(snapshot(), ingress("b", host="z.example.com", path="/p", created=None)).allowed
