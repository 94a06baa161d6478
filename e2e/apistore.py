"""Storage behind the Kubernetes API server double (`e2e/apiserver.py`): objects, one global
resourceVersion counter, the event history watches replay, and selectors.

Behaviour copied from the API reference (api-concepts: resource versions, efficient
detection of changes, watch bookmarks; label and field selectors):
- every write bumps one cluster-wide resourceVersion, stored as a decimal string;
- a watch from resourceVersion N replays the history after N, or gets `410 Gone`
  (reason Expired) when N is older than the oldest kept event (`compact()`);
- an update carrying a stale metadata.resourceVersion is refused with 409 Conflict;
- PUT/PATCH on a resource with a status subresource ignore .status, and the `/status`
  subresource changes nothing but .status;
- a watch with a selector sees ADDED/DELETED when an object starts/stops matching.

Design choice: plain dicts in, plain dicts out (deep-copied at the boundary), one lock and
one condition variable; watchers are cursors into the history list, so a watch never
misses or reorders an event.
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Resource:
    group_version: str  # "v1", "networking.k8s.io/v1"
    plural: str
    kind: str
    namespaced: bool
    has_status: bool = False
    field_labels: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.group_version.rpartition("/")[0] if "/" in self.group_version else ""


_EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                 "involvedObject.uid", "reason", "type", "source", "reportingComponent")
RESOURCES = {(r.group_version, r.plural): r for r in (
    Resource("v1", "services", "Service", True, has_status=True),
    Resource("v1", "secrets", "Secret", True, field_labels=("type",)),
    Resource("v1", "configmaps", "ConfigMap", True),
    Resource("v1", "nodes", "Node", False, has_status=True, field_labels=("spec.unschedulable",)),
    Resource("v1", "namespaces", "Namespace", False, has_status=True),
    Resource("v1", "events", "Event", True, field_labels=_EVENT_FIELDS),
    Resource("networking.k8s.io/v1", "ingresses", "Ingress", True, has_status=True),
    Resource("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    Resource("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
    Resource("coordination.k8s.io/v1", "leases", "Lease", True),
    Resource("apps/v1", "deployments", "Deployment", True, has_status=True),
    Resource("apps/v1", "daemonsets", "DaemonSet", True, has_status=True),
    Resource("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
             False),
    Resource("events.k8s.io/v1", "events", "Event", True, field_labels=("reason", "type", "regarding.name")),
    Resource("gateway.networking.k8s.io/v1", "gatewayclasses", "GatewayClass", False, has_status=True),
    Resource("gateway.networking.k8s.io/v1", "gateways", "Gateway", True, has_status=True),
    Resource("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", True, has_status=True),
    Resource("gateway.networking.k8s.io/v1", "grpcroutes", "GRPCRoute", True, has_status=True),
    Resource("gateway.networking.k8s.io/v1beta1", "referencegrants", "ReferenceGrant", True),
)}
BY_KIND = {r.kind: r for r in RESOURCES.values() if r.group_version != "events.k8s.io/v1"}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


# --- selectors ---------------------------------------------------------------------------

_REQ = re.compile(r"\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in parts + [cur] if p.strip()]


def label_matcher(selector: str | None) -> Any:
    """Compile a label selector (=, ==, !=, in, notin, exists, !exists); 400 if malformed."""
    reqs = []
    for part in _split_selector(selector or ""):
        m = _REQ.fullmatch(part)
        if not m or (m.group(1) and (m.group(3) or m.group(5))):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        neg, key, op, val, setop, values = m.groups()
        reqs.append((neg, key, op or setop, val if op else {v.strip() for v in (values or "").split(",")}))

    def match(labels: dict[str, str]) -> bool:
        for neg, key, op, val in reqs:
            present = key in labels
            if op is None and present == bool(neg):
                return False
            if op in ("=", "==") and labels.get(key) != val:
                return False
            if op == "!=" and labels.get(key) == val:
                return False
            if op == "in" and labels.get(key) not in val:
                return False
            if op == "notin" and present and labels[key] in val:
                return False
        return True
    return match


def _field(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur).lower() if isinstance(cur, bool) else str(cur)


def field_matcher(selector: str | None, res: Resource) -> Any:
    reqs = []
    for part in _split_selector(selector or ""):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        key = m.group(1)
        if key not in ("metadata.name", "metadata.namespace") + res.field_labels:
            raise ApiError(400, "BadRequest", f'"{key}" is not a known field selector: only '
                           f'"metadata.name", "metadata.namespace"' + "".join(f', "{f}"' for f in res.field_labels))
        reqs.append((key, m.group(2), m.group(3)))

    def match(obj: dict[str, Any]) -> bool:
        return all((_field(obj, k) == v) == (op != "!=") for k, op, v in reqs)
    return match


# --- merge patch (RFC 7386) -----------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# --- the store -----------------------------------------------------------------------------

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
Key = tuple[str, str, str, str]  # group_version, plural, namespace, name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiStore:
    """Objects plus the event history; safe for many handler threads."""

    def __init__(self, start_rv: int = 1000) -> None:
        self.cond = threading.Condition()
        self.rv = start_rv
        self.objects: dict[Key, dict[str, Any]] = {}
        self.history: list[tuple[int, str, Resource, dict[str, Any] | None, dict[str, Any]]] = []
        self.oldest_rv = start_rv  # watches from an older resourceVersion get 410
        self.next_ip, self.next_node_port = 10, 30000
        self.writes: list[tuple[str, str, str, str, str]] = []  # (verb, kind, ns, name, subresource)

    def compact(self) -> None:
        """Forget the history (as etcd compaction or an API server restart would)."""
        with self.cond:
            self.history.clear()
            self.oldest_rv = self.rv

    # -- reads -----------------------------------------------------------------------------
    def get(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            obj = self.objects.get((res.group_version, res.plural, ns, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found'
                               .replace(".core", ""))
            return copy.deepcopy(obj)

    def list(self, res: Resource, ns: str, labels: Any, fields: Any) -> tuple[list[dict[str, Any]], int]:
        with self.cond:
            items = [copy.deepcopy(o) for (gv, pl, ons, _), o in sorted(self.objects.items())
                     if (gv, pl) == (res.group_version, res.plural) and (not ns or ons == ns)
                     and labels(o["metadata"].get("labels") or {}) and fields(o)]
            return items, self.rv

    # -- writes ----------------------------------------------------------------------------
    def _commit(self, res: Resource, etype: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, etype, res, copy.deepcopy(old), copy.deepcopy(new)))
        self.cond.notify_all()

    def create(self, res: Resource, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        self._check(res, ns, body)
        with self.cond:
            key = (res.group_version, res.plural, ns, meta["name"])
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{res.plural} "{meta["name"]}" already exists')
            obj = copy.deepcopy(body)
            obj.update(kind=res.kind, apiVersion=res.group_version)
            m = obj["metadata"]
            m.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            if res.kind == "Service":
                self._allocate(obj.setdefault("spec", {}))
            if res.namespaced:
                m["namespace"] = ns
            self._commit(res, "ADDED", None, obj)
            self.objects[key] = obj
            self.writes.append(("create", res.kind, ns, m["name"], ""))
            return copy.deepcopy(obj)

    def _allocate(self, spec: dict[str, Any]) -> None:
        """clusterIP from 10.96.0.0/16 and nodePorts from 30000-32767, as the API server assigns them."""
        if spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
            self.next_ip += 1
            spec["clusterIP"] = f"10.96.{self.next_ip // 256}.{self.next_ip % 256}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    self.next_node_port += 1
                    port["nodePort"] = self.next_node_port

    def update(self, res: Resource, ns: str, name: str, body: dict[str, Any], sub: str = "",
               verb: str = "update") -> dict[str, Any]:
        self._check(res, ns, body)
        if body["metadata"].get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        with self.cond:
            key = (res.group_version, res.plural, ns, name)
            old = self.objects.get(key)
            if old is None:
                raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
            want_rv = body["metadata"].get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.plural} "{name}": the '
                               "object has been modified; please apply your changes to the latest version "
                               "and try again")
            new = self._merge_update(res, old, body, sub)
            if new == old:
                return copy.deepcopy(old)  # a no-op write does not bump the resourceVersion
            self._commit(res, "MODIFIED", old, new)
            self.objects[key] = new
            self.writes.append((verb, res.kind, ns, name, sub))
            return copy.deepcopy(new)

    @staticmethod
    def _merge_update(res: Resource, old: dict[str, Any], body: dict[str, Any], sub: str) -> dict[str, Any]:
        keep = ("uid", "creationTimestamp", "generation", "namespace", "resourceVersion")
        if sub == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(body.get("status") or {})
            return new
        new = copy.deepcopy(body)
        new.update(kind=res.kind, apiVersion=res.group_version)
        for k in keep:
            if k in old["metadata"]:
                new["metadata"][k] = old["metadata"][k]
        if res.has_status:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        return new

    def patch(self, res: Resource, ns: str, name: str, patch: Any, sub: str = "") -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        with self.cond:
            current = self.get(res, ns, name)
            merged = merge_patch(current, patch)
            merged["metadata"]["resourceVersion"] = (patch.get("metadata") or {}).get(
                "resourceVersion", current["metadata"]["resourceVersion"])
            return self.update(res, ns, name, merged, sub, verb="patch")

    def delete(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            key = (res.group_version, res.plural, ns, name)
            old = self.objects.pop(key, None)
            if old is None:
                raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
            gone = copy.deepcopy(old)
            self._commit(res, "DELETED", old, gone)
            self.writes.append(("delete", res.kind, ns, name, ""))
            return copy.deepcopy(gone)

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Test helper: create or replace (spec and status) by the object's own kind."""
        res = BY_KIND[obj["kind"]]
        ns = (obj.get("metadata") or {}).get("namespace", "default") if res.namespaced else ""
        name = obj["metadata"]["name"]
        with self.cond:
            if (res.group_version, res.plural, ns, name) not in self.objects:
                return self.create(res, ns, copy.deepcopy(obj))
            body = copy.deepcopy(obj)
            body["metadata"].pop("resourceVersion", None)
            out = self.update(res, ns, name, body)
            if res.has_status and "status" in obj:
                out = self.update(res, ns, name, {**out, "status": obj["status"]}, sub="status")
            return out

    def _check(self, res: Resource, ns: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value")
        if not _NAME.match(meta["name"]):
            raise ApiError(422, "Invalid", f'{res.kind} "{meta["name"]}" is invalid: metadata.name: Invalid '
                           "value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                           "characters, '-' or '.'")
        if res.namespaced and meta.get("namespace") not in (None, "", ns):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                           "namespace sent on the request")
        if body.get("kind") not in (None, res.kind):
            raise ApiError(400, "BadRequest", f"kind {body.get('kind')} does not match {res.kind}")

    # -- watch -----------------------------------------------------------------------------
    def events_after(self, res: Resource, ns: str, after: int, labels: Any, fields: Any
                     ) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """Visible events after `after` (caller holds cond); 410 when history is gone."""
        if after < self.oldest_rv:
            raise ApiError(410, "Expired", f"too old resource version: {after} ({self.oldest_rv})")
        out = []
        for rv, etype, r, old, new in self.history:
            if rv <= after or r != res:
                continue
            if ns and new["metadata"].get("namespace") != ns:
                continue
            was = old is not None and labels(old["metadata"].get("labels") or {}) and fields(old)
            now = labels(new["metadata"].get("labels") or {}) and fields(new)
            if etype == "MODIFIED" and was != now:
                etype = "ADDED" if now else "DELETED"
            elif not (now if etype != "DELETED" else was):
                continue
            out.append((etype, copy.deepcopy(new)))
        return out, self.rv
