"""certgen logic against an in-memory API: idempotent create, renewal reasons, caBundle patch."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from kubernetes.client.exceptions import ApiException

from ingressctl.admission import certs

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NAMES = certs.service_names("hook", "ingressctl")


class FakeApi:
    """Objects by path; PUT checks resourceVersion (409 when stale), like the API server."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self.rv = 1
        self.conflicts_to_inject = 0

    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                content_type: Any = None, timeout: Any = None) -> dict[str, Any]:
        if method == "GET":
            if path not in self.objects:
                raise ApiException(status=404, reason="Not Found")
            return copy.deepcopy(self.objects[path])
        self.writes.append((method, path))
        if method == "POST":
            path = f"{path}/{body['metadata']['name']}"
            if path in self.objects:
                raise ApiException(status=409, reason="AlreadyExists")
        elif method == "PUT":
            if self.conflicts_to_inject:
                self.conflicts_to_inject -= 1
                raise ApiException(status=409, reason="Conflict")
            if body["metadata"].get("resourceVersion") != self.objects[path]["metadata"]["resourceVersion"]:
                raise ApiException(status=409, reason="Conflict")
        self.rv += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[path] = stored
        return copy.deepcopy(stored)


def vwc(api: FakeApi, hooks: int = 2) -> str:
    path = certs.VWC_PATH + "ingressctl"
    api.objects[path] = {"metadata": {"name": "ingressctl", "resourceVersion": "1"}, "webhooks": [
        {"name": f"h{i}.ingressctl.io", "failurePolicy": "Ignore",
         "clientConfig": {"service": {"name": "hook", "namespace": "ingressctl"}}} for i in range(hooks)]}
    return path


def test_create_then_keep() -> None:
    api = FakeApi()
    action, secret = certs.ensure_secret(api, "ingressctl", "hook-cert", NAMES, NOW)
    assert action == "created"
    assert secret["type"] == "kubernetes.io/tls"
    data = certs.secret_data(secret)
    assert certs.problem(data, NAMES, NOW) == ""
    again, _ = certs.ensure_secret(api, "ingressctl", "hook-cert", NAMES, NOW + timedelta(days=100))
    assert again == "kept"
    assert api.writes == [("POST", "/api/v1/namespaces/ingressctl/secrets")]


def test_certificate_names_and_lifetimes() -> None:
    pair = certs.generate([*NAMES, "127.0.0.1"], NOW)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["hook", "hook.ingressctl", "hook.ingressctl.svc"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.not_valid_after_utc - NOW == certs.CERT_LIFETIME
    ca = x509.load_pem_x509_certificate(pair.ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca)


@pytest.mark.parametrize("later,names,why", [
    (timedelta(days=340), NAMES, "expires"),
    (timedelta(days=1), [*NAMES, "hook.ingressctl.svc.cluster.local"], "does not cover"),
])
def test_replaced_when_expiring_or_names_change(later: timedelta, names: list[str], why: str) -> None:
    api = FakeApi()
    certs.ensure_secret(api, "ingressctl", "hook-cert", NAMES, NOW)
    action, secret = certs.ensure_secret(api, "ingressctl", "hook-cert", names, NOW + later)
    assert action.startswith("replaced") and why in action
    assert certs.problem(certs.secret_data(secret), names, NOW + later) == ""


@pytest.mark.parametrize("damage,why", [
    (lambda d: d.pop("ca.crt"), "missing ca.crt"),
    (lambda d: d.update({"tls.key": certs.generate(NAMES, NOW).key_pem}), "does not match"),
    (lambda d: d.update({"ca.crt": certs.generate(NAMES, NOW).ca_pem}), "not signed by ca.crt"),
    (lambda d: d.update({"tls.crt": b"garbage"}), "does not parse"),
])
def test_problem_reasons(damage: Any, why: str) -> None:
    pair = certs.generate(NAMES, NOW)
    data = {"ca.crt": pair.ca_pem, "tls.crt": pair.cert_pem, "tls.key": pair.key_pem}
    damage(data)
    assert why in certs.problem(data, NAMES, NOW)


def test_patch_sets_ca_bundle_once() -> None:
    api = FakeApi()
    path = vwc(api)
    ca = certs.generate(NAMES, NOW).ca_pem
    assert certs.patch_webhook(api, "ingressctl", ca, "Fail") is True
    hooks = api.objects[path]["webhooks"]
    assert all(base64.b64decode(h["clientConfig"]["caBundle"]) == ca for h in hooks)
    assert all(h["failurePolicy"] == "Fail" for h in hooks)
    assert hooks[0]["clientConfig"]["service"] == {"name": "hook", "namespace": "ingressctl"}
    writes = len(api.writes)
    assert certs.patch_webhook(api, "ingressctl", ca, "Fail") is False
    assert certs.patch_webhook(api, "ingressctl", ca) is False
    assert len(api.writes) == writes


def test_patch_keeps_the_failure_policy_of_named_webhooks() -> None:
    """The routes webhook stays Ignore: a stopped ingressctl must not block other controllers' routes."""
    api = FakeApi()
    path = vwc(api)
    ca = certs.generate(NAMES, NOW).ca_pem
    assert certs.patch_webhook(api, "ingressctl", ca, "Fail", keep_policy=("h1.ingressctl.io",)) is True
    hooks = api.objects[path]["webhooks"]
    assert [h["failurePolicy"] for h in hooks] == ["Fail", "Ignore"]
    assert all(base64.b64decode(h["clientConfig"]["caBundle"]) == ca for h in hooks)


def test_patch_retries_a_conflict_and_reports_a_missing_configuration() -> None:
    api = FakeApi()
    vwc(api)
    api.conflicts_to_inject = 1
    assert certs.patch_webhook(api, "ingressctl", b"ca") is True
    with pytest.raises(LookupError, match="not found"):
        certs.patch_webhook(api, "missing", b"ca")
