"""deploy/monitoring: the component builds into an overlay, its Service reaches the controller's
status port, and every metric its alerts and dashboard use is one ingressctl exposes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ingressctl.metrics import ControllerMetrics
from ingressctl.metrics_compat import IngressNginxMetrics
from ingressctl.metrics_requests import RequestMetricsOptions, request_families, stub_status_families
from ingressctl.proxy.sync import ProxyMetrics

from .deploy_kit import DEPLOY, find, kustomize, one, pod_spec, selects

MONITORING = DEPLOY / "monitoring"
_NAME = re.compile(r"\b((?:nginx_ingress_controller|ingressctl|process)_[a-z0-9_]+)\b")


def _exposed() -> set[str]:
    """Every sample name ingressctl's /metrics can carry."""
    metrics = ControllerMetrics()
    IngressNginxMetrics(metrics.registry, "ingressctl.io/ingress-controller", "test")
    families = list(metrics.registry.collect()) + list(ProxyMetrics().registry.collect())
    labels = "\t".join(["a.test", "200", "GET", "", "/ ns ing svc"])
    dump = "".join(f"{name}\t{slot}\t{labels}\t1\n" for name in ("requests", "request_duration_seconds",
                                                                  "response_duration_seconds", "request_size",
                                                                  "bytes_sent") for slot in ("", "1", "s"))
    page = "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0\n"
    families += request_families(dump, RequestMetricsOptions(), ("", "", "")) + stub_status_families(page, ("", "", ""))
    names = set()
    for fam in families:
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(fam.type, ("",))
        names |= {fam.name + s for s in suffixes} | {s.name for s in fam.samples}
    return names


def _queries() -> list[str]:
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    out = [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads((MONITORING / "ingressctl-dashboard.json").read_text())
    out += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    out += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return out


def test_every_metric_of_the_alerts_and_dashboard_is_exposed() -> None:
    used = {name for q in _queries() for name in _NAME.findall(q)}
    assert len(used) >= 10
    missing = used - _exposed()
    assert not missing, f"used by deploy/monitoring but not exposed: {sorted(missing)}"


def test_every_alert_is_well_formed() -> None:
    """promtool is not packaged for this machine: the rule file's schema, checked here."""
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    names = []
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["labels"]["severity"] in ("critical", "warning", "info") and rule["annotations"]["summary"]
            assert re.fullmatch(r"[0-9]+[smhd]", rule.get("for", "0s")), rule
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["expr"]
            names.append(rule["alert"])
    assert len(names) == len(set(names)) >= 8


def test_the_component_builds_into_an_overlay_and_reaches_the_status_port(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "ingressctl",
        "resources": [os.path.relpath(DEPLOY / "overlays" / "deployment-loadbalancer", overlay)],
        "components": [os.path.relpath(MONITORING, overlay)]}))
    objs: list[dict[str, Any]] = kustomize(overlay)
    svc = one(objs, "Service", "ingressctl-controller-metrics")
    (deployment,) = find(objs, "Deployment")
    assert selects(svc["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    ports = {p["name"] for c in pod_spec(deployment)["containers"] for p in c.get("ports", [])}
    assert svc["spec"]["ports"][0]["targetPort"] in ports
    monitor = one(objs, "ServiceMonitor", "ingressctl-controller")
    assert selects(monitor["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert monitor["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    dashboard = one(objs, "ConfigMap", "ingressctl-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["ingressctl-dashboard.json"])["uid"] == "ingressctl"
    assert all(o["metadata"].get("namespace") == "ingressctl" for o in objs if o["kind"] != "ClusterRole"
               and o["kind"] not in ("ClusterRoleBinding", "IngressClass", "ValidatingWebhookConfiguration",
                                     "Namespace"))
