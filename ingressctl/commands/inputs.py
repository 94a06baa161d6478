"""Where the read-only commands (explain, diff, migrate) get their objects from.

`--manifests DIR` reads a directory the way `ingressctl run` does (clusterIPs assigned as the
API server would); `--kubeconfig F` lists every kind once from a cluster (read-only: list
requests only, no watch). Without either, the current kubeconfig context is used, which is
what `kubectl ingressctl ...` means.

Design choice: the build is `Controller.build`, the very function the controller runs
(ConfigMap settings, class filter, default backend), so a command can never explain a
configuration the controller would not produce.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ..cli import UserError
from ..controller import Controller
from ..ingress.build import BuildResult
from ..ingress.classes import ClassFilter
from ..sources.allocate import DEFAULT_SERVICE_CIDR, AddressAllocator
from ..sources.files import ManifestDirectory
from ..store import Snapshot, Store
from .common import add_class_flags, controller_options


def add_source_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("objects (one of)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--manifests", type=Path, metavar="DIR", help="directory of YAML manifests (local mode)")
    src.add_argument("--kubeconfig", metavar="FILE",
                     help="read the cluster's objects (list only; default: the current kubeconfig context)")
    g.add_argument("--context", default="", metavar="NAME", help="kubeconfig context (default: the current one)")
    g.add_argument("--service-cidr", default=DEFAULT_SERVICE_CIDR, help=argparse.SUPPRESS)
    add_class_flags(p)


def load_snapshot(args: argparse.Namespace) -> tuple[Snapshot, list[str]]:
    """(snapshot, problems reading it)."""
    store = Store()
    if args.manifests is not None:
        if not args.manifests.is_dir():
            raise UserError(f"--manifests {args.manifests}: not a directory")
        source = ManifestDirectory(args.manifests, store, AddressAllocator(service_cidr=args.service_cidr),
                                   on_problems=lambda _: None, max_file_bytes=1 << 30)  # exports are big
        problems = [str(p) for p in source.load()]
        return store.snapshot(), problems
    return _from_cluster(args.kubeconfig, args.configmap, store, args.context)


def _from_cluster(kubeconfig: str | None, configmap: str, store: Store, context: str = "") -> tuple[Snapshot, list[str]]:
    from ..kube.client import KubeClient, KubeUnavailable, load_configuration
    from ..sources.kube import KubeSource, default_specs

    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        source = KubeSource(KubeClient(load_configuration(kubeconfig, context)), store,
                            default_specs(configmap=configmap))
        source.initial_sync()
    except KubeUnavailable as e:
        raise UserError(str(e)) from None
    except Exception as e:  # kubeconfig missing or unreadable
        raise UserError(f"--kubeconfig: {e}") from None
    problems = [f"{k} {ns}/{n}: {msg}" for k, ns, n, msg in source.invalid_objects()]
    return store.snapshot(), problems


def class_filter(args: argparse.Namespace) -> ClassFilter:
    return ClassFilter(controller=args.controller_class, ingress_class=args.ingress_class,
                       watch_without_class=args.watch_ingress_without_class)


def build_like_controller(args: argparse.Namespace, snap: Snapshot) -> BuildResult:
    ctl = Controller(Store(), controller_options(args))
    return ctl.build(snap)


def read_raw_inputs(paths: list[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """(where, raw object) from files, directories (their *.yaml, *.yml, *.json) and '-' (stdin)."""
    import yaml

    from ..sources.files import SUFFIXES, raw_documents

    docs: list[tuple[str, Any]] = []
    problems: list[str] = []
    for name in paths:
        p = Path(name)
        if name != "-" and not p.exists():
            raise UserError(f"{name}: no such file or directory")
        files = [p] if name == "-" or p.is_file() else sorted(
            f for f in p.rglob("*") if f.suffix in SUFFIXES and f.is_file() and not f.name.startswith("."))
        for f in files:
            where = "<stdin>" if name == "-" else str(f)
            try:
                text = sys.stdin.read() if name == "-" else f.read_text(encoding="utf-8")
                docs += [(f"{where}:{line}", raw) for line, raw in raw_documents(text, where)]
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                problems.append(f"{where}: cannot read: {e}")
    return docs, problems


def list_raw_from_cluster(kubeconfig: str | None, extra: tuple[str, ...] = (),
                          context: str = "") -> list[tuple[str, Any]]:
    """Every object of the kinds ingressctl reads, listed once (read-only), as raw dicts; `extra`
    API paths (e.g. /apis/apps/v1/deployments) are listed too and skipped when refused."""
    from ..kube.client import RESOURCES, KubeClient, KubeUnavailable, describe_failure, load_configuration
    from ..sources.kube import DEFAULT_SECRET_SELECTOR

    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        client = KubeClient(load_configuration(kubeconfig, context))
    except Exception as e:  # kubeconfig missing or unreadable
        raise UserError(f"--kubeconfig: {e}") from None
    out: list[tuple[str, Any]] = []
    wanted = [(RESOURCES[k].path(), k, {"fieldSelector": DEFAULT_SECRET_SELECTOR} if k == "Secret" else {})
              for k in ("IngressClass", "Ingress", "Service", "EndpointSlice", "Secret", "ConfigMap")]
    wanted += [(p, "", {}) for p in extra]
    for path, kind, query in wanted:
        try:
            body = client.request("GET", path, query)
        except KubeUnavailable as e:
            raise UserError(str(e)) from None
        except Exception as e:
            if not kind:
                continue  # optional kinds (the controller's Deployment): not readable, not needed
            raise UserError(describe_failure(client.host, e)) from None
        item_kind = kind or str(body.get("kind", "")).removesuffix("List")
        for raw in body.get("items") or []:
            raw.setdefault("kind", item_kind)
            out.append((f"{client.host}{path}", raw))
    return out
