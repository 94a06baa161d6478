"""Policy checks on the built manifests (deploy/overlays/*): least-privilege RBAC, security
contexts, probes and resources, and the image the manifests name being the one the
Dockerfile builds."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from .deploy_kit import (
    DEPLOY,
    OVERLAYS,
    ROOT,
    containers,
    expanded_args,
    flag,
    kustomize,
    pod_spec,
    port_number,
)

READ_VERBS = {"get", "list", "watch"}
# capability -> the only containers that may add it (the reason is in the manifests' comments)
ALLOWED_CAPS = {"NET_BIND_SERVICE": {"controller"}, "NET_ADMIN": {"proxy"}, "NET_RAW": {"proxy"}}
ROOT_CONTAINERS = {"proxy"}  # netfilter changes need uid 0 in the node's network namespace


@pytest.fixture(scope="module")
def objs() -> list[dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name in OVERLAYS:
        for o in kustomize(DEPLOY / "overlays" / name):
            out[(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"] + "@" + name)] = o
    return list(out.values())


def _rules(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{o['kind']} {o['metadata']['name']}", r) for o in objs if o["kind"] in ("Role", "ClusterRole")
            for r in o.get("rules", [])]


def test_no_rbac_rule_uses_a_wildcard_or_a_dangerous_verb(objs: list[dict[str, Any]]) -> None:
    rules = _rules(objs)
    assert len(rules) >= 10
    for where, r in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert not any("*" in x for x in r.get(key, [])), f"{where}: wildcard in {key}: {r}"
        assert not set(r["verbs"]) & {"escalate", "bind", "impersonate", "deletecollection", "delete"}, where


def test_secrets_are_read_only_except_the_webhook_secret_certgen_owns(objs: list[dict[str, Any]]) -> None:
    for where, r in _rules(objs):
        if "secrets" not in r["resources"] or set(r["verbs"]) <= READ_VERBS:
            continue
        assert where == "Role ingressctl-admission", f"{where} may write Secrets: {r}"
        assert set(r["verbs"]) <= {"create", "get", "update"}
        # create cannot be limited by name (the object does not exist when it is authorized)
        assert r.get("resourceNames") == ["ingressctl-admission"] or r["verbs"] == ["create"], r


def test_every_service_account_is_bound_and_every_pod_has_its_own(objs: list[dict[str, Any]]) -> None:
    bound = {(s["namespace"], s["name"]) for o in objs for s in o.get("subjects", [])}
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs if o["kind"] == "ServiceAccount"}
    assert accounts and accounts <= bound and bound <= accounts
    for w, _ in containers(objs):
        assert (w["metadata"]["namespace"], pod_spec(w).get("serviceAccountName")) in accounts, w["metadata"]["name"]


def test_every_long_running_container_has_probes_on_its_status_port(objs: list[dict[str, Any]]) -> None:
    checked = 0
    for w, c in containers(objs):
        if w["kind"] == "Job":
            continue
        args = expanded_args(w, c)
        status = int(flag(args, "--status-port") or 0)
        assert status, f"{c['name']}: give --status-port explicitly so the probes can be checked"
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz" if args[0] == "controller"
                                                                          else "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{w['metadata']['name']} {probe}"
            assert port_number(c, get["port"]) == status, f"{w['metadata']['name']} {probe} port"
            if "host" in get:  # a status port on loopback is probed there (hostNetwork pods only)
                assert pod_spec(w).get("hostNetwork") and get["host"] == flag(args, "--status-address")
        checked += 1
    assert checked >= 4


def test_every_container_has_requests_and_a_memory_limit(objs: list[dict[str, Any]]) -> None:
    for w, c in containers(objs):
        res = c.get("resources", {})
        assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{w['metadata']['name']}/{c['name']}"
        assert "memory" in res.get("limits", {}), f"{w['metadata']['name']}/{c['name']}"


def test_security_contexts_are_least_privilege(objs: list[dict[str, Any]]) -> None:
    for w, c in containers(objs):
        where = f"{w['metadata']['name']}/{c['name']}"
        pod = pod_spec(w).get("securityContext", {})
        sc = c.get("securityContext", {})
        assert not sc.get("privileged"), where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc["capabilities"]["drop"] == ["ALL"], where
        added = set(sc["capabilities"].get("add", []))
        for cap in added:
            assert c["name"] in ALLOWED_CAPS.get(cap, set()), f"{where} adds {cap}"
        assert (pod.get("seccompProfile") or sc.get("seccompProfile", {})).get("type") == "RuntimeDefault", where
        non_root = sc.get("runAsNonRoot", pod.get("runAsNonRoot"))
        assert non_root is (c["name"] not in ROOT_CONTAINERS), where
        args = expanded_args(w, c)
        if args[0] != "controller":
            assert sc.get("allowPrivilegeEscalation") is False, where
            continue
        # The image's nginx has the file capability cap_net_bind_service=+ep: exec fails with
        # EPERM unless the bounding set holds it; no_new_privs keeps a file capability from
        # being granted, so only a controller binding ports below 1024 may escalate.
        assert "NET_BIND_SERVICE" in added, where
        low = min(int(flag(args, "--http-port") or 80), int(flag(args, "--https-port") or 443)) < 1024
        assert sc.get("allowPrivilegeEscalation") is low, where


def test_pods_write_only_to_emptydirs(objs: list[dict[str, Any]]) -> None:
    for w, c in containers(objs):
        volumes = {v["name"]: v for v in pod_spec(w).get("volumes", [])}
        for m in c.get("volumeMounts", []):
            v = volumes[m["name"]]
            if "hostPath" in v:  # only the node's iptables lock, shared with every netfilter writer
                assert (v["hostPath"]["path"], c["name"]) == ("/run/xtables.lock", "proxy")
            elif "emptyDir" not in v:
                assert m.get("readOnly") is True, f"{w['metadata']['name']}: {m['mountPath']} must be read-only"


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_manifests_name_the_image_the_dockerfile_builds(objs: list[dict[str, Any]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    image = f"ingressctl:{version}"
    assert f"docker build -t {image} ." in _dockerfile()
    assert f"docker build -t {image} ." in (ROOT / "README.md").read_text()
    for w, c in containers(objs):
        assert c["image"] == image and c["imagePullPolicy"] == "IfNotPresent", w["metadata"]["name"]


def test_dockerfile_runs_ingressctl_as_the_manifests_user(objs: list[dict[str, Any]]) -> None:
    text = _dockerfile()
    assert re.search(r'^ENTRYPOINT \["ingressctl"\]$', text, re.MULTILINE)
    user = re.search(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    assert user, "USER must be numeric so that runAsNonRoot can be verified"
    assert re.search(r"^FROM debian:\S+-slim$", text, re.MULTILINE) and "nginx-extras" in text
    assert "setcap cap_net_bind_service=+ep /usr/sbin/nginx" in text
    for w, c in containers(objs):
        pod = pod_spec(w).get("securityContext", {})
        uid = c.get("securityContext", {}).get("runAsUser", pod.get("runAsUser"))
        assert str(uid) == (user.group(1) if c["name"] not in ROOT_CONTAINERS else "0"), w["metadata"]["name"]


def test_every_package_is_in_the_wheel_the_image_installs() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ingressctl").rglob("__init__.py")}
    assert on_disk <= listed, f"missing from pyproject.toml packages: {sorted(on_disk - listed)}"
