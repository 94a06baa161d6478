"""Raw objects of an export -> typed objects, the ingress-nginx controller's flags, and which
Ingresses ingress-nginx serves (its class filter, rebuilt from its flags).

Kinds ingressctl does not read (Deployments aside, whose container arguments are the
controller's flags) are counted, not reported: an export of a namespace holds many.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..ingress.classes import ClassFilter
from ..objects import KINDS, IngressClass, KubeObject, ObjectError, parse_object

INGRESS_NGINX = "k8s.io/ingress-nginx"
WORKLOADS = ("Deployment", "DaemonSet")


@dataclass(frozen=True)
class ControllerArgs:
    """The ingress-nginx controller container of one workload and its `--flag[=value]` arguments."""

    workload: str  # "Deployment ns/name"
    flags: tuple[tuple[str, str], ...]  # ("--ingress-class", "nginx"); bare flags have value "true"

    def get(self, name: str, default: str = "") -> str:
        return next((val for k, val in self.flags if k == name), default)


@dataclass(frozen=True)
class Export:
    objects: tuple[KubeObject, ...]
    controllers: tuple[ControllerArgs, ...] = ()
    problems: tuple[str, ...] = ()  # objects that could not be read
    skipped: Mapping[str, int] = field(default_factory=dict)  # kind -> count, kinds ingressctl does not read


def _is_controller(container: Mapping[str, Any]) -> bool:
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    image = str(container.get("image") or "")
    return "ingress-nginx/controller" in image or any(w.endswith("/nginx-ingress-controller") for w in words)


def controller_args(raw: Mapping[str, Any]) -> ControllerArgs | None:
    """The ingress-nginx controller in a Deployment/DaemonSet, or None."""
    meta = raw.get("metadata") or {}
    spec = ((raw.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in spec.get("containers") or []:
        if isinstance(c, Mapping) and _is_controller(c):
            flags = []
            ns = str(meta.get("namespace") or "default")
            for word in [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]:
                if word.startswith("--"):
                    name, sep, value = word.partition("=")
                    flags.append((name, value.replace("$(POD_NAMESPACE)", ns) if sep else "true"))
            return ControllerArgs(f"{raw.get('kind')} {ns}/{meta.get('name', '?')}",
                                  tuple(flags))
    return None


def read_export(docs: Iterable[tuple[str, Any]]) -> Export:
    """(where, raw object) pairs -> Export; `where` names the file and line for problems."""
    objects: list[KubeObject] = []
    controllers: list[ControllerArgs] = []
    problems: list[str] = []
    skipped: Counter[str] = Counter()
    seen: set[tuple[str, str, str]] = set()
    for where, raw in docs:
        kind = raw.get("kind") if isinstance(raw, Mapping) else None
        if kind in WORKLOADS:
            ctl = controller_args(raw)
            if ctl is not None:
                controllers.append(ctl)
            continue
        if not isinstance(kind, str) or kind not in KINDS:
            skipped[str(kind)] += 1
            continue
        try:
            obj = parse_object(raw)
        except ObjectError as e:
            problems.append(f"{where}: {e}")
            continue
        key = (obj.meta.kind, obj.meta.namespace, obj.meta.name)
        if key not in seen:
            seen.add(key)
            objects.append(obj)
    return Export(tuple(objects), tuple(controllers), tuple(problems), dict(sorted(skipped.items())))


@dataclass(frozen=True)
class Source:
    """How ingress-nginx chose its Ingresses and its ConfigMap."""

    classes: ClassFilter
    configmap: str  # ns/name, "" = none found
    controller: str  # "Deployment ns/name" or ""


def source_of(export: Export, from_class: str = "", configmap: str = "") -> Source:
    """ingress-nginx's class filter: its flags if the export holds its Deployment, else the
    defaults (controller k8s.io/ingress-nginx, legacy class 'nginx'); `from_class` names the
    IngressClass to migrate from instead."""
    ctl = export.controllers[0] if export.controllers else ControllerArgs("", ())
    controller = ctl.get("--controller-class", INGRESS_NGINX)
    legacy = ctl.get("--ingress-class", "nginx")
    if from_class:
        cls = next((o for o in export.objects if isinstance(o, IngressClass) and o.meta.name == from_class), None)
        controller = cls.controller if cls is not None else controller
        legacy = from_class
    without = ctl.get("--watch-ingress-without-class", "false") == "true"
    cm = configmap or ctl.get("--configmap") or _default_configmap(export)
    return Source(ClassFilter(controller=controller, ingress_class=legacy, watch_without_class=without),
                  cm, ctl.workload)


def _default_configmap(export: Export) -> str:
    """The Helm chart's and the static manifests' ConfigMap name, when the export holds it."""
    names = {f"{o.meta.namespace}/{o.meta.name}" for o in export.objects if o.meta.kind == "ConfigMap"}
    for candidate in ("ingress-nginx/ingress-nginx-controller", "ingress-nginx/nginx-configuration"):
        if candidate in names:
            return candidate
    return ""
