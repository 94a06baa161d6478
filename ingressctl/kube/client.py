"""Connection to the Kubernetes API: configuration loading and a small raw-JSON client.

`load_configuration` follows the order users expect: `--kubeconfig`, then `$KUBECONFIG`,
then the in-cluster service account, then `~/.kube/config`. `KubeClient` sends requests
through the official `kubernetes` client (its auth, TLS and proxy handling) but reads and
writes plain JSON, which `ingressctl.objects.parse_object` takes as it is: no generated
model classes in between, and one code path for every kind.

Design choice: every failure a user can cause (no config, unreachable, TLS, 401, 403) is
turned into `KubeUnavailable` with one line naming the server and the reason.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

MERGE_PATCH = "application/merge-patch+json"


class KubeUnavailable(Exception):
    """The API cannot be used: message is one line for the user."""


@dataclass(frozen=True)
class Resource:
    kind: str
    group_version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "", sub: str = "") -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}" + (f"/{sub}" if sub else "")
        return base


RESOURCES = {r.kind: r for r in (
    Resource("Ingress", "networking.k8s.io/v1", "ingresses", True),
    Resource("IngressClass", "networking.k8s.io/v1", "ingressclasses", False),
    Resource("Service", "v1", "services", True),
    Resource("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True),
    Resource("Secret", "v1", "secrets", True),
    Resource("ConfigMap", "v1", "configmaps", True),
    Resource("Node", "v1", "nodes", False),
    Resource("Lease", "coordination.k8s.io/v1", "leases", True),
    Resource("Event", "v1", "events", True),
    # Gateway API (standard channel CRDs; optional: see sources/kube.py) and Namespaces (allowedRoutes selectors)
    Resource("GatewayClass", "gateway.networking.k8s.io/v1", "gatewayclasses", False),
    Resource("Gateway", "gateway.networking.k8s.io/v1", "gateways", True),
    Resource("HTTPRoute", "gateway.networking.k8s.io/v1", "httproutes", True),
    Resource("GRPCRoute", "gateway.networking.k8s.io/v1", "grpcroutes", True),
    Resource("ReferenceGrant", "gateway.networking.k8s.io/v1beta1", "referencegrants", True),
    Resource("Namespace", "v1", "namespaces", False),
)}


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    """--kubeconfig, $KUBECONFIG, in-cluster service account, ~/.kube/config; else KubeUnavailable.
    `context` picks a kubeconfig context other than the current one."""
    cfg = Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    try:
        if path:
            if not Path(path).is_file():
                raise KubeUnavailable(f"kubeconfig {path} does not exist")
            kube_config.load_kube_config(config_file=path, context=context or None, client_configuration=cfg,
                                         persist_config=False)
        elif os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
            kube_config.load_incluster_config(client_configuration=cfg)
        elif Path("~/.kube/config").expanduser().is_file():
            kube_config.load_kube_config(context=context or None, client_configuration=cfg, persist_config=False)
        else:
            raise KubeUnavailable("no cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a "
                                  "pod with a service account")
    except ConfigException as e:
        raise KubeUnavailable(f"cannot load the cluster configuration{f' from {path}' if path else ''}: "
                              f"{_one_line(str(e))}") from None
    return cfg


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "{}").get("message") or e.reason)
    except ValueError:
        return str(e.reason)


def describe_failure(host: str, e: BaseException) -> str:
    """One line for any failure talking to the API server."""
    if isinstance(e, ApiException):
        if e.status == 401:
            return f"the Kubernetes API at {host} refused our credentials (401 Unauthorized)"
        if e.status == 403:
            return f"the Kubernetes API at {host} denied access (403): {api_message(e)}"
        if e.status == 0:
            return f"cannot talk to the Kubernetes API at {host}: {_one_line(str(e.reason))}"
        return f"the Kubernetes API at {host} answered {e.status}: {api_message(e)}"
    reason = getattr(e, "reason", None) or e
    if isinstance(reason, (ssl.SSLError, urllib3.exceptions.SSLError)) or "SSL" in type(reason).__name__:
        return f"TLS with the Kubernetes API at {host} failed (check the CA in the kubeconfig): {_one_line(str(reason))}"
    return f"cannot reach the Kubernetes API at {host}: {_one_line(str(reason))}"


class KubeClient:
    """Raw-JSON requests through the official client's ApiClient."""

    def __init__(self, configuration: Configuration, timeout: float = 10.0) -> None:
        configuration.retries = 1  # one immediate retry (a pooled keep-alive connection gone stale); backoff is ours
        self.configuration = configuration
        self.api = ApiClient(configuration)
        self.timeout = timeout

    @property
    def host(self) -> str:
        return str(self.configuration.host)

    def _call(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              content_type: str | None, timeout: Any) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = self.api.param_serialize(
            method, path, query_params=[(k, v) for k, v in (query or {}).items() if v not in (None, "")],
            header_params=headers, body=body, auth_settings=["BearerToken"])
        resp = self.api.call_api(*params, _request_timeout=timeout or self.timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException(http_resp=resp)
        return resp

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: Any = None) -> dict[str, Any]:
        """One request; the decoded JSON answer. ApiException for HTTP errors, urllib3 errors else."""
        resp = self._call(method, path, query, body, content_type, timeout)
        data = resp.read()
        return json.loads(data) if data else {}

    def stream(self, path: str, query: dict[str, Any], timeout: Any) -> urllib3.BaseHTTPResponse:
        """A streaming GET (watch); the caller reads lines and closes it."""
        resp: urllib3.BaseHTTPResponse = self._call("GET", path, query, None, None, timeout).response
        return resp

    def check(self) -> None:
        """A cheap authenticated request; KubeUnavailable with the reason if it fails."""
        try:
            self.request("GET", RESOURCES["IngressClass"].path(), {"limit": 1}, timeout=(5, 10))
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeUnavailable(describe_failure(self.host, e)) from None

    def close(self) -> None:
        self.api.close()


def connect(kubeconfig: str | None = None) -> KubeClient:
    """Load the configuration and prove the API answers with our credentials."""
    client = KubeClient(load_configuration(kubeconfig))
    client.check()
    return client
