"""deploy/: every overlay builds with `kubectl kustomize`, every object is valid Kubernetes
(OpenAPI schemas, strict: unknown fields are errors), every flag in a container's args is
one the real argument parser accepts, and the pieces refer to each other correctly
(webhook -> Service -> controller port, --publish-service -> Service, ConfigMap keys).
Security, probes, resources and RBAC are in test_deploy_policy.py."""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from ingressctl.admission.server import ROUTES_PATH, WEBHOOK_PATH
from ingressctl.cli import build_parser
from ingressctl.ingress.classes import CONTROLLER_NAME
from ingressctl.ingress.settings import KEYS, Settings, parse_settings
from ingressctl.ingress.values import duration
from ingressctl.proxy.lb.ipam import LB_CLASS, parse_pools

from .deploy_kit import (
    DEPLOY,
    OVERLAYS,
    containers,
    expanded_args,
    find,
    flag,
    kustomize,
    one,
    pod_spec,
    port_number,
    selects,
)

K8S_VERSIONS = ("1.30.0", latest_version())  # the oldest release we claim, and the newest schema shipped


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(DEPLOY / "overlays" / name) for name in OVERLAYS}


def _all(built: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, o) for name, objs in built.items() for o in objs]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_with_the_shared_pieces(built: dict[str, Any], overlay: str) -> None:
    objs = built[overlay]
    for kind, name in (("Namespace", "ingressctl"), ("ClusterRole", "ingressctl"), ("IngressClass", "ingressctl"),
                       ("ConfigMap", "ingressctl-controller"), ("ValidatingWebhookConfiguration", "ingressctl-admission"),
                       ("Service", "ingressctl-admission"), ("Job", "ingressctl-admission-create"),
                       ("Job", "ingressctl-admission-patch")):
        one(objs, kind, name)
    workload = "DaemonSet" if overlay == "daemonset-hostnetwork" else "Deployment"
    one(objs, workload, "ingressctl-controller")
    for o in objs:
        if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass",
                             "ValidatingWebhookConfiguration"):
            assert o["metadata"].get("namespace") == "ingressctl", f"{o['kind']} {o['metadata']['name']}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_against_the_openapi_schema(built: dict[str, Any], version: str) -> None:
    errors = []
    for overlay, o in _all(built):
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            errors.append(f"{overlay}: {o['kind']} {o['metadata']['name']}: {getattr(e, 'message', e)}")
    assert not errors, "\n".join(errors)


def test_the_schema_check_catches_a_misspelt_field(built: dict[str, Any]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(one(built["nodeport"], "Deployment", "ingressctl-controller")))
    pod_spec(broken)["containers"][0]["readinesProbe"] = pod_spec(broken)["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def _parse(args: list[str]) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"ingressctl rejects {args}: {err.getvalue().strip()}")


def test_every_container_runs_ingressctl_with_flags_it_accepts(built: dict[str, Any]) -> None:
    seen = set()
    for objs in built.values():
        for workload, c in containers(objs):
            assert "command" not in c, f"{c['name']}: the image's ENTRYPOINT (ingressctl) must run"
            ns = _parse(expanded_args(workload, c))
            seen.add((ns.command, getattr(ns, "verb", None)))
    assert seen == {("controller", None), ("proxy", None), ("certgen", "create"), ("certgen", "patch")}


def test_a_wrong_flag_is_caught_by_the_parser_check() -> None:
    with pytest.raises(pytest.fail.Exception, match="--publish-servce"):
        _parse(["controller", "--publish-servce=ingressctl/x"])


def _controller(objs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    for w, c in containers(objs):
        args = expanded_args(w, c)
        if args[:1] == ["controller"]:
            return w, c, args
    raise AssertionError("no controller container")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhook_reaches_the_controllers_webhook_port_with_the_certgen_secret(built: dict[str, Any],
                                                                              overlay: str) -> None:
    objs = built[overlay]
    vwc = one(objs, "ValidatingWebhookConfiguration", "ingressctl-admission")
    hook, routes = vwc["webhooks"]
    # Ignore until certgen has patched the caBundle (then Fail); a few seconds at most per write
    assert (hook["failurePolicy"], hook["sideEffects"], hook["matchPolicy"]) == ("Ignore", "None", "Equivalent")
    assert 1 <= hook["timeoutSeconds"] <= 5
    (rule,) = hook["rules"]
    assert rule["operations"] == ["CREATE", "UPDATE"] and rule["resources"] == ["ingresses"]
    assert rule["apiGroups"] == ["networking.k8s.io"] and hook["admissionReviewVersions"] == ["v1"]
    ref = hook["clientConfig"]["service"]
    assert ref["path"] == WEBHOOK_PATH
    svc = one(find(objs, "Service"), "Service", ref["name"])
    assert svc["metadata"]["namespace"] == ref["namespace"]
    (sport,) = [p for p in svc["spec"]["ports"] if p["port"] == ref["port"]]
    workload, c, args = _controller(objs)
    assert selects(svc["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])
    assert port_number(c, sport["targetPort"]) == int(flag(args, "--webhook-port") or 0)
    # the certificate the controller serves is the Secret certgen writes, for this Service
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    (vol,) = [v for v in pod_spec(workload)["volumes"] if "secret" in v]
    assert flag(args, "--webhook-cert") == f"{mounts[vol['name']]}/tls.crt"
    assert flag(args, "--webhook-key") == f"{mounts[vol['name']]}/tls.key"
    jobs = {expanded_args(w, jc)[1]: expanded_args(w, jc) for w, jc in containers(objs) if w["kind"] == "Job"}
    for verb in ("create", "patch"):
        assert flag(jobs[verb], "--secret-name") == vol["secret"]["secretName"]
        assert flag(jobs[verb], "--namespace") == svc["metadata"]["namespace"]
    assert flag(jobs["create"], "--service") == svc["metadata"]["name"]
    assert flag(jobs["patch"], "--webhook-name") == vwc["metadata"]["name"]
    assert flag(jobs["patch"], "--failure-policy") == "Fail"
    # HTTPRoutes: the same Service on their own path, and Ignore for good (other controllers' routes)
    assert routes["clientConfig"]["service"] == {**ref, "path": ROUTES_PATH}
    (rule,) = routes["rules"]
    assert (rule["apiGroups"], rule["resources"]) == (["gateway.networking.k8s.io"], ["httproutes", "grpcroutes"])
    assert routes["failurePolicy"] == "Ignore" and "matchConditions" not in routes
    assert flag(jobs["patch"], "--keep-failure-policy") == routes["name"]


def _ingress(class_name: str | None = None, legacy: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "namespace": "ns"}
    if legacy is not None:
        meta["annotations"] = {"kubernetes.io/ingress.class": legacy, "other": "y"}
    return {"metadata": meta, "spec": {"ingressClassName": class_name} if class_name else {"rules": []}}


@pytest.mark.parametrize("ingress,sent", [
    (_ingress("ingressctl"), True),
    (_ingress("nginx"), False),  # ingress-nginx's, side by side: never blocked by us
    (_ingress(legacy="ingressctl"), True),
    (_ingress(legacy="nginx"), False),
    (_ingress("ingressctl", legacy="nginx"), True),  # spec.ingressClassName wins, as in the controller
    (_ingress(), True),  # no class: ours when our class is the default, so checked
])
def test_webhook_is_sent_only_ingresses_of_our_class(built: dict[str, Any], ingress: dict[str, Any],
                                                     sent: bool) -> None:
    try:
        import celpy
    except ImportError:
        pytest.fail("cel-python is missing: run scripts/setup.sh (or .venv/bin/python -m pip install "
                    "'cel-python>=0.5,<0.6')", pytrace=False)

    hook = one(built["nodeport"], "ValidatingWebhookConfiguration", "ingressctl-admission")["webhooks"][0]
    ic = one(built["nodeport"], "IngressClass", "ingressctl")
    env = celpy.Environment()
    results = [env.program(env.compile(c["expression"])).evaluate({"object": celpy.json_to_cel(ingress)})
               for c in hook["matchConditions"]]
    assert all(bool(r) for r in results) == sent
    assert ic["metadata"]["name"] in hook["matchConditions"][0]["expression"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_and_name_ports_they_have(built: dict[str, Any], overlay: str) -> None:
    objs = built[overlay]
    pods = [(w, c) for w, c in containers(objs) if w["kind"] != "Job"]
    for svc in find(objs, "Service"):
        matched = [c for w, c in pods if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        assert matched, f"Service {svc['metadata']['name']} selects no pod"
        for p in svc["spec"]["ports"]:
            for c in matched:
                port_number(c, p["targetPort"])


def test_loadbalancer_overlay_publishes_its_local_traffic_service(built: dict[str, Any]) -> None:
    objs = built["deployment-loadbalancer"]
    workload, c, args = _controller(objs)
    assert workload["spec"]["replicas"] == 2
    svc = one(objs, "Service", "ingressctl-controller")
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["externalTrafficPolicy"] == "Local"
    assert flag(args, "--publish-service") == f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
    assert {p["port"] for p in svc["spec"]["ports"]} == {80, 443}
    assert port_number(c, "http") == int(flag(args, "--http-port") or 80)
    assert port_number(c, "https") == int(flag(args, "--https-port") or 443)
    pdb = one(objs, "PodDisruptionBudget", "ingressctl-controller")
    assert selects(pdb["spec"]["selector"]["matchLabels"], workload["spec"]["template"]["metadata"]["labels"])
    anti = pod_spec(workload)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    # a cloud cluster has kube-proxy and a load-balancer controller: neither our proxy nor our allocator
    assert not find(objs, "DaemonSet") and not find(objs, "ConfigMap", "ingressctl-lb-pools")
    assert "loadBalancerClass" not in svc["spec"]  # the cloud's controller serves it


def test_bare_metal_overlay_adds_the_proxy_and_opts_its_service_in() -> None:
    lb = kustomize(DEPLOY / "overlays" / "deployment-loadbalancer")
    objs = kustomize(DEPLOY / "overlays" / "bare-metal")
    proxy = one(objs, "DaemonSet", "ingressctl-proxy")
    assert proxy["metadata"]["namespace"] == "ingressctl"
    svc = one(objs, "Service", "ingressctl-controller")
    assert svc["spec"]["loadBalancerClass"] == LB_CLASS
    args = expanded_args(proxy, pod_spec(proxy)["containers"][0])
    assert flag(args, "--lb-claim-unclassed") is None  # only Services that opt in
    # everything else is the deployment-loadbalancer overlay
    key = lambda o: (o["kind"], o["metadata"]["name"])
    extra = {key(o) for o in objs} - {key(o) for o in lb}
    assert extra == {("DaemonSet", "ingressctl-proxy"), ("ConfigMap", "ingressctl-lb-pools"),
                     ("ServiceAccount", "ingressctl-proxy"), ("ClusterRole", "ingressctl-proxy"),
                     ("ClusterRoleBinding", "ingressctl-proxy"), ("Role", "ingressctl-proxy"),
                     ("RoleBinding", "ingressctl-proxy")}, extra


def test_nodeport_overlay_has_fixed_node_ports_and_the_proxy(built: dict[str, Any]) -> None:
    objs = built["nodeport"]
    svc = one(objs, "Service", "ingressctl-controller")
    assert svc["spec"]["type"] == "NodePort"
    assert sorted(p["nodePort"] for p in svc["spec"]["ports"]) == [30080, 30443]
    assert not find(objs, "DaemonSet")  # node ports work through kube-proxy; ours is opt-in (../../proxy)
    one(objs, "PodDisruptionBudget", "ingressctl-controller")


def test_hostnetwork_daemonset_binds_the_node_ports_on_edge_nodes(built: dict[str, Any]) -> None:
    objs = built["daemonset-hostnetwork"]
    workload, c, args = _controller(objs)
    spec = pod_spec(workload)
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/edge": ""}
    assert any(t.get("key") == "node-role.kubernetes.io/edge" for t in spec["tolerations"])
    host_ports = {p["name"]: p.get("hostPort") for p in c["ports"]}
    assert host_ports["http"] == int(flag(args, "--http-port") or 80) == 80
    assert host_ports["https"] == int(flag(args, "--https-port") or 443) == 443
    node_name = [e for e in c["env"] if e["name"] == "NODE_NAME"]
    assert node_name and node_name[0]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert flag(args, "--publish-service") is None and flag(args, "--publish-status-address") is None
    assert not find(objs, "Service", "ingressctl-controller")


def test_every_hostnetwork_pod_keeps_cluster_dns(built: dict[str, Any]) -> None:
    hostnet = [(n, o) for n, o in _all(built) if o["kind"] in ("DaemonSet", "Deployment")
               and pod_spec(o).get("hostNetwork")]
    assert len(hostnet) == 2  # the edge controller, the proxy of the bare-metal overlay
    for overlay, o in hostnet:
        assert pod_spec(o).get("dnsPolicy") == "ClusterFirstWithHostNet", f"{overlay}: {o['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_reads_the_configmap_and_drains_longer_than_nginx(built: dict[str, Any], overlay: str) -> None:
    objs = built[overlay]
    workload, c, args = _controller(objs)
    ns, _, name = (flag(args, "--configmap") or "").partition("/")
    cm = one(objs, "ConfigMap", name)
    assert cm["metadata"]["namespace"] == ns
    settings, _ = parse_settings(cm["data"])
    assert pod_spec(workload)["terminationGracePeriodSeconds"] * 1000 > settings.worker_shutdown_timeout.ms
    state = flag(args, "--state-dir")
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == state]
    assert "emptyDir" in volumes[mount["name"]], "nginx writes under --state-dir: it must be a writable emptyDir"


def test_configmap_lists_every_setting_at_its_default() -> None:
    cm = yaml.safe_load((DEPLOY / "base" / "configmap.yaml").read_text())
    settings, problems = parse_settings(cm["data"])
    assert not problems
    assert settings == Settings()
    assert set(cm["data"]) == set(KEYS)
    assert duration(cm["data"]["worker-shutdown-timeout"]).ms == 240_000


def test_ingressclass_names_our_controller_and_is_not_default_unless_asked(built: dict[str, Any]) -> None:
    ic = one(built["nodeport"], "IngressClass", "ingressctl")  # not `nginx`: that one is ingress-nginx's
    assert ic["spec"]["controller"] == CONTROLLER_NAME
    assert "ingressclass.kubernetes.io/is-default-class" not in (ic["metadata"].get("annotations") or {})
    assert "is-default-class" in (DEPLOY / "base" / "ingressclass.yaml").read_text()  # the commented way
    for objs in built.values():  # the legacy annotation names the same class
        assert flag(_controller(objs)[2], "--ingress-class") == ic["metadata"]["name"]


def test_lb_pool_example_is_valid_for_the_proxy(built: dict[str, Any]) -> None:
    objs = built["bare-metal"]
    cm = one(objs, "ConfigMap", "ingressctl-lb-pools")
    pools = parse_pools(cm["data"]["pools.yaml"], "deploy/proxy/lb-pools.yaml")
    assert [p.name for p in pools] == ["public", "internal"]
    proxy = one(objs, "DaemonSet", "ingressctl-proxy")
    args = expanded_args(proxy, pod_spec(proxy)["containers"][0])
    assert flag(args, "--lb-pools") == f"configmap:{cm['metadata']['namespace']}/{cm['metadata']['name']}"
    assert flag(args, "--lb-lease") == f"{proxy['metadata']['namespace']}/ingressctl-lb"


def test_the_namespace_is_changed_in_one_place(tmp_path: Path) -> None:
    tree = tmp_path / "deploy"
    shutil.copytree(DEPLOY, tree)
    overlay = tree / "overlays" / "nodeport" / "kustomization.yaml"
    text = overlay.read_text()
    assert "\nnamespace: ingressctl\n" in text
    overlay.write_text(text.replace("\nnamespace: ingressctl\n", "\nnamespace: edge-system\n"))
    objs = kustomize(overlay.parent)
    one(objs, "Namespace", "edge-system")
    for o in objs:
        for s in o.get("subjects", []):
            assert s["namespace"] == "edge-system", f"{o['kind']} {o['metadata']['name']}"
    hook = one(objs, "ValidatingWebhookConfiguration", "ingressctl-admission")["webhooks"][0]
    assert hook["clientConfig"]["service"]["namespace"] == "edge-system"
    _, _, args = _controller(objs)
    assert flag(args, "--configmap") == "edge-system/ingressctl-controller"


def test_rendered_install_yaml_is_fresh() -> None:
    """deploy/install.yaml is the deployment-loadbalancer overlay, rendered (scripts/render-install.sh)."""
    text = (DEPLOY / "install.yaml").read_text()
    header = [line for line in text.splitlines() if line.startswith("#")][:5]
    assert "scripts/render-install.sh" in header[0]
    rendered = [d for d in yaml.safe_load_all(text) if d]
    assert rendered == kustomize(DEPLOY / "overlays" / "deployment-loadbalancer"), \
        "deploy/install.yaml is stale: run scripts/render-install.sh"
