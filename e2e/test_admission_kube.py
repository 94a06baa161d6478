"""e2e: `ingressctl webhook --kubeconfig` judges against the cluster it watches (the API server double).

The standalone webhook lists and watches the API like the controller does; a verdict must
see an Ingress created after the webhook started (the watch), and name it in a conflict.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import CLASS, TOKEN, ApiServer, ingress, make_tls, service, start_apiserver, write_kubeconfig
from .harness import INGRESSCTL, ROOT, free_port
from .test_admission_webhook import Client, wait_until


@pytest.fixture
def kube_webhook(tmp_path: Path) -> Iterator[tuple[ApiServer, Client]]:
    api = start_apiserver(tmp_path, bookmark_interval=0.5)
    api.apply(CLASS, service("web"), ingress("shop", "shop.example.com", "web"))
    ca, cert, key = make_tls(tmp_path / "webhook-tls")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN, api.ca_path)  # type: ignore[attr-defined]
    port = free_port()
    log = (tmp_path / "webhook.log").open("w")
    proc = subprocess.Popen([*INGRESSCTL, "webhook", "--port", str(port), "--address", "127.0.0.1", "--cert", str(cert),
                             "--key", str(key), "--kubeconfig", str(kubeconfig)], cwd=ROOT, stdout=log, stderr=log)
    try:
        client = Client(port, ca.read_text())
        wait_until(lambda: client.healthz() == 200, 20, "the webhook's /healthz")
        yield api, client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        api.stop()


def verdict(client: Client, obj: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "operation": "CREATE", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
        "namespace": "default", "object": obj}}).encode()
    status, doc = client.post(body)
    assert status == 200, doc
    return doc["response"]  # type: ignore[no-any-return]


def test_standalone_webhook_follows_the_cluster(kube_webhook: tuple[ApiServer, Client]) -> None:
    api, client = kube_webhook
    denied = verdict(client, ingress("copy", "shop.example.com", "web"))
    assert denied["allowed"] is False
    assert "already defined in Ingress default/shop" in denied["status"]["message"]
    assert verdict(client, ingress("blog", "blog.example.com", "web"))["allowed"] is True
    api.apply(ingress("blog", "blog.example.com", "web", namespace="team-b"))  # created after the start
    wait_until(lambda: verdict(client, ingress("blog", "blog.example.com", "web"))["allowed"] is False, 15,
               "the watched Ingress to be seen by the webhook")
    message = verdict(client, ingress("blog", "blog.example.com", "web"))["status"]["message"]
    assert "already defined in Ingress team-b/blog" in message
