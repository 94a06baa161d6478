"""Kubernetes API source: list + watch every kind the controller reads, into the Store.

`KubeSource.initial_sync()` lists every kind and fills the Store with one
`store.replace(kinds, objects)`, so the first snapshot a consumer sees is complete. Then one
thread per kind watches from the list's resourceVersion with `allowWatchBookmarks`, resumes
from the last seen resourceVersion after a dropped connection or a server-side timeout, and
answers `410 Gone` by relisting that kind and replacing it in one step. Failures back off
exponentially (capped, with jitter); while the API is unreachable the Store is left alone,
so nginx keeps serving the last configuration.

Design choice: objects travel as raw JSON (`KubeClient`), parsed by the same
`ingressctl.objects.parse_object` the manifest source uses, so both sources are
indistinguishable downstream. An object that does not parse is dropped from the Store and
reported, never half-applied.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from ..kube.client import RESOURCES, KubeClient, KubeUnavailable, describe_failure
from ..objects import KubeObject, ObjectError, parse_object
from ..store import Store

log = logging.getLogger(__name__)

TLS_SECRETS = "type=kubernetes.io/tls"
# TLS certificates and auth Secrets (basic auth, client CA) are read; the bulky or sensitive
# kinds nothing here uses are never streamed to us.
DEFAULT_SECRET_SELECTOR = ",".join(f"type!={t}" for t in (
    "kubernetes.io/service-account-token", "helm.sh/release.v1", "kubernetes.io/dockerconfigjson",
    "kubernetes.io/dockercfg", "bootstrap.kubernetes.io/token"))


@dataclass(frozen=True)
class WatchSpec:
    kind: str
    namespace: str = ""  # "" = every namespace (or a cluster-scoped kind)
    field_selector: str = ""
    label_selector: str = ""
    optional: bool = False  # a kind whose CRD may be absent (404): left out, the rest is served


GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant")


def default_specs(watch_namespace: str = "", configmap: str = "",
                  secret_selector: str = DEFAULT_SECRET_SELECTOR, gateway: bool = False,
                  configmaps: tuple[str, ...] = ()) -> list[WatchSpec]:
    """What `ingressctl controller` watches: one spec per kind (`gateway`: the Gateway API
    kinds too, optional, and Namespaces for allowedRoutes selectors). ConfigMaps: every one
    of the controller ConfigMap's namespace (and of `configmaps`' namespaces, e.g. the TCP/UDP
    services), so the ConfigMaps its keys name (add-headers, proxy-set-headers) are seen."""
    ns = watch_namespace
    specs = [WatchSpec("IngressClass"), WatchSpec("Ingress", ns), WatchSpec("Service", ns),
             WatchSpec("EndpointSlice", ns), WatchSpec("Secret", ns, secret_selector)]
    cm_namespaces = sorted({ref.partition("/")[0] for ref in (configmap, *configmaps) if ref})
    if cm_namespaces:
        specs.append(WatchSpec("ConfigMap", cm_namespaces[0] if len(cm_namespaces) == 1 else ""))
    if gateway:
        specs += [WatchSpec(k, "" if k == "GatewayClass" else ns, optional=True) for k in GATEWAY_KINDS]
        specs.append(WatchSpec("Namespace"))
    return specs


@dataclass
class Backoff:
    """Capped exponential backoff with equal jitter: delay in [d/2, d], d = min(cap, base*2^n)."""

    base: float = 0.25
    cap: float = 30.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        d = min(self.cap, self.base * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return float(d / 2 + self.rng.uniform(0, d / 2))

    def reset(self) -> None:
        self.attempts = 0


RESYNC = 600.0  # --resync-period: every kind is relisted this often (0: never)
RELIST_AFTER_OUTAGE = 5.0  # an API unreachable for longer may have been restored: relist


PROBE_INTERVAL = 0.5  # while backing off, how often a cheap request checks whether the API is back


class WatchExpired(Exception):
    """The resourceVersion we resume from is gone (410): relist."""


@dataclass
class SourceStats:
    lists: int = 0
    relists: int = 0  # after 410, a long outage or a resourceVersion that went back
    resyncs: int = 0  # periodic (--resync-period)
    reconnects: int = 0
    errors: int = 0
    invalid: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (kind, ns, name) -> error


class KubeSource:
    def __init__(self, client: KubeClient, store: Store, specs: list[WatchSpec],
                 watch_seconds: int = 300, backoff_cap: float = 30.0, backoff_base: float = 0.25,
                 resync: float = RESYNC, relist_after: float = RELIST_AFTER_OUTAGE) -> None:
        self.client, self.store, self.specs = client, store, specs
        self.watch_seconds = watch_seconds
        self.backoff_cap, self.backoff_base = backoff_cap, backoff_base
        self.resync, self.relist_after = resync, relist_after
        self._failing_since: dict[str, float | None] = {}
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- listing -----------------------------------------------------------------------------
    def _query(self, spec: WatchSpec) -> dict[str, Any]:
        return {"fieldSelector": spec.field_selector, "labelSelector": spec.label_selector}

    def list_kind(self, spec: WatchSpec) -> tuple[list[KubeObject], str]:
        res = RESOURCES[spec.kind]
        body = self.client.request("GET", res.path(spec.namespace), self._query(spec))
        objects = []
        for raw in body.get("items") or []:
            raw.setdefault("kind", spec.kind)  # list items come without kind and apiVersion
            obj = self._parse(raw)
            if obj is not None:
                objects.append(obj)
        self.stats.lists += 1
        return objects, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _parse(self, raw: dict[str, Any]) -> KubeObject | None:
        meta = raw.get("metadata") or {}
        what = (str(raw.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        try:
            obj = parse_object(raw)
        except ObjectError as e:
            if self.stats.invalid.get(what) != str(e):
                log.warning("ignoring %s: %s", " ".join(what), e)
            self.stats.invalid[what] = str(e)
            return None
        self.stats.invalid.pop(what, None)
        return obj

    def invalid_objects(self) -> list[tuple[str, str, str, str]]:
        """(kind, namespace, name, error) for objects the API holds that we could not read."""
        return [(*k, msg) for k, msg in sorted(self.stats.invalid.items())]

    def initial_sync(self) -> dict[str, str]:
        """List every kind, fill the Store in one step; returns resourceVersion per kind."""
        objects: list[KubeObject] = []
        versions: dict[str, str] = {}
        absent: list[WatchSpec] = []
        try:
            for spec in self.specs:
                try:
                    objs, rv = self.list_kind(spec)
                except ApiException as e:
                    if not (spec.optional and e.status == 404):
                        raise
                    log.warning("%s: the API server does not serve this kind (CRD not installed?); "
                                "left out until the controller restarts", spec.kind)
                    absent.append(spec)
                    continue
                objects += objs
                versions[spec.kind] = rv
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeUnavailable(describe_failure(self.client.host, e)) from None
        self.specs = [s for s in self.specs if s not in absent]
        self.store.replace({s.kind for s in self.specs}, objects)
        return versions

    def relist(self, spec: WatchSpec) -> str:
        for k in [k for k in self.stats.invalid if k[0] == spec.kind]:
            del self.stats.invalid[k]
        objs, rv = self.list_kind(spec)
        self.store.replace({spec.kind}, objs)
        return rv

    # -- watching ----------------------------------------------------------------------------
    def start(self, versions: dict[str, str]) -> None:
        for spec in self.specs:
            t = threading.Thread(target=self._run, args=(spec, versions.get(spec.kind, "")),
                                 name=f"watch-{spec.kind}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for resp in self._responses.values():
                try:
                    resp.shutdown()
                except Exception as e:
                    log.debug("closing watch: %s", e)
        for t in self._threads:
            t.join(timeout=2)

    def _run(self, spec: WatchSpec, rv: str) -> None:
        backoff = Backoff(base=self.backoff_base, cap=self.backoff_cap)
        next_resync = time.monotonic() + self.resync if self.resync else 0.0
        while not self._stop.is_set():
            try:
                rv = self._relist_if_due(spec, rv, next_resync)
                if not rv:
                    rv = self.relist(spec)
                    self._failing_since[spec.kind] = None
                    next_resync = time.monotonic() + self.resync if self.resync else 0.0
                rv = self.watch(spec, rv, next_resync)
                backoff.reset()  # the server ended the watch cleanly: resume at once
            except WatchExpired as e:
                log.info("watch %s: resourceVersion %s %s; relisting", spec.kind, rv, e)
                self.stats.relists += 1
                rv = ""
                backoff.reset()
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                if self._stop.is_set():
                    return
                if isinstance(e, ApiException) and e.status == 410:
                    self.stats.relists += 1
                    rv = ""
                    continue
                self.stats.errors += 1
                if self._failing_since.get(spec.kind) is None:
                    self._failing_since[spec.kind] = time.monotonic()
                delay = backoff.next()
                log.warning("watch %s: %s; retrying in %.1fs or as soon as the API answers", spec.kind,
                            describe_failure(self.client.host, e), delay)
                self._wait_for_api(delay)
            self.stats.reconnects += 1

    def _relist_if_due(self, spec: WatchSpec, rv: str, next_resync: float) -> str:
        """"" (relist) after a long outage (the API may come back restored from a backup, its
        resourceVersions older than ours, with no 410) or when the periodic resync is due."""
        since = self._failing_since.get(spec.kind)
        if rv and since is not None and time.monotonic() - since > self.relist_after:
            log.info("watch %s: the API was unreachable for more than %.0fs; relisting", spec.kind,
                     self.relist_after)
            self.stats.relists += 1
            return ""
        if rv and self.resync and time.monotonic() >= next_resync:
            log.debug("watch %s: periodic resync", spec.kind)
            self.stats.resyncs += 1
            return ""
        return rv

    def _wait_for_api(self, delay: float) -> None:
        """Sleep out the backoff, but stop as soon as the API answers a cheap request."""
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.wait(min(PROBE_INTERVAL, left)) or self._api_answers():
                return

    def _api_answers(self) -> bool:
        try:
            self.client.request("GET", RESOURCES["IngressClass"].path(), {"limit": 1}, timeout=(0.5, 1))
        except ApiException:
            return True  # an HTTP answer (even 403): the API is there
        except (urllib3.exceptions.HTTPError, OSError, ValueError):
            return False
        return True

    def watch(self, spec: WatchSpec, rv: str, until: float = 0.0) -> str:
        """Stream one watch from `rv` (ending by `until`, a monotonic time, when set); returns
        the last resourceVersion seen."""
        res = RESOURCES[spec.kind]
        seconds = self.watch_seconds
        if until:
            seconds = max(1, min(seconds, int(until - time.monotonic()) + 1))
        query = {**self._query(spec), "watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true",
                 "timeoutSeconds": seconds}
        resp = self.client.stream(res.path(spec.namespace), query, timeout=(5, seconds + 30))
        self._failing_since[spec.kind] = None  # connected
        with self._lock:
            self._responses[spec.kind] = resp
        try:
            for event in _events(resp):
                rv = self._handle(spec, event, rv) or rv
                if self._stop.is_set():
                    break
        finally:
            with self._lock:
                self._responses.pop(spec.kind, None)
            resp.release_conn()
        return rv

    def _handle(self, spec: WatchSpec, event: dict[str, Any], last: str = "") -> str:
        etype, raw = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            if raw.get("code") == 410:
                raise WatchExpired("expired (410)")
            raise ApiException(status=raw.get("code") or 500, reason=raw.get("message") or "watch error")
        meta = raw.get("metadata") or {}
        if _went_back(last, str(meta.get("resourceVersion") or "")):
            raise WatchExpired(f"then {meta.get('resourceVersion')}: it went back (a restored control plane?)")
        if etype in ("ADDED", "MODIFIED"):
            obj = self._parse(raw)
            if obj is None:
                self.store.delete(spec.kind, meta.get("namespace", "") if RESOURCES[spec.kind].namespaced else "",
                                  meta.get("name", ""))
            else:
                self.store.apply(obj)
        elif etype == "DELETED":
            ns = meta.get("namespace", "") if RESOURCES[spec.kind].namespaced else ""
            self.stats.invalid.pop((spec.kind, ns, meta.get("name", "")), None)
            self.store.delete(spec.kind, ns, meta.get("name", ""))
        return str(meta.get("resourceVersion") or "")


def _went_back(last: str, now: str) -> bool:
    """resourceVersions are opaque, but every API server in use makes them increasing integers:
    a smaller one means the store behind the API was replaced (an etcd restore)."""
    return last.isdigit() and now.isdigit() and int(now) < int(last)


def _events(resp: Any) -> Iterator[dict[str, Any]]:
    """JSON watch events, one per line, from a chunked response."""
    buf = b""
    for chunk in resp.stream(None, decode_content=False):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if buf.strip():
        yield json.loads(buf)
