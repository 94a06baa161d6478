"""What every object kind shares: `Meta`, `ObjectError`, and `_Reader`, the field access
that names the object and the field when something is wrong."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ObjectError(ValueError):
    """A Kubernetes object that cannot be read; the message names object and field."""


@dataclass(frozen=True)
class Meta:
    kind: str
    namespace: str
    name: str
    uid: str = ""
    resource_version: str = ""
    creation_timestamp: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def age_key(self) -> tuple[str, str, str]:
        """Sort key for 'oldest wins': creationTimestamp, then namespace/name."""
        return (self.creation_timestamp or "9999", self.namespace, self.name)


class _Reader:
    """Field access with errors that say which object and which field went wrong."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, path: str, msg: str) -> ObjectError:
        return ObjectError(f"{self.what}: {path}: {msg}")

    def mapping(self, obj: Any, path: str) -> Mapping[str, Any]:
        if obj is None:
            return {}
        if not isinstance(obj, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(obj).__name__}")
        return obj

    def seq(self, obj: Any, path: str, limit: int | None = None) -> list[Any]:
        if obj is None:
            return []
        if not isinstance(obj, list):
            raise self.fail(path, f"expected a list, got {type(obj).__name__}")
        if limit is not None and len(obj) > limit:
            raise self.fail(path, f"{len(obj)} items: at most {limit} (the API server's bound)")
        return obj

    def text(self, obj: Any, path: str, default: str = "") -> str:
        if obj is None:
            return default
        if not isinstance(obj, str):
            raise self.fail(path, f"expected a string, got {type(obj).__name__}")
        if not obj.isascii() and not _encodable(obj):
            raise self.fail(path, "is not valid Unicode text (a lone surrogate)")
        return obj

    def integer(self, obj: Any, path: str, default: int = 0) -> int:
        if obj is None:
            return default
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise self.fail(path, f"expected an integer, got {obj!r}")
        return int(obj)

    def flag(self, obj: Any, path: str, default: bool) -> bool:
        if obj is None:
            return default
        if not isinstance(obj, bool):
            raise self.fail(path, f"expected true or false, got {obj!r}")
        return obj

    def str_map(self, obj: Any, path: str, secret: bool = False) -> dict[str, str]:
        """A string -> string map; `secret` maps (Secret data) never quote a value in errors."""
        out: dict[str, str] = {}
        for k, v in self.mapping(obj, path).items():
            if not isinstance(k, str):
                raise self.fail(path, f"key {k!r} is not a string")
            if isinstance(v, (int, float, bool)) and not isinstance(v, str):
                shown = f"a {type(v).__name__}" if secret else repr(v)
                raise self.fail(f"{path}.{k}", f"value {shown} must be a string (quote it)")
            out[k] = self.text(v, f"{path}.{k}")
        return out

    def int_or_str(self, obj: Any, path: str) -> int | str:
        if isinstance(obj, bool) or not isinstance(obj, (int, str)) or obj == "":
            raise self.fail(path, f"expected a port number or name, got {obj!r}")
        return obj if isinstance(obj, str) else int(obj)


def _encodable(text: str) -> bool:
    """False for a lone surrogate (JSON's "\\udc80"): it reaches no file nginx can read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _meta(r: _Reader, kind: str, raw: Mapping[str, Any], namespaced: bool) -> Meta:
    m = r.mapping(raw.get("metadata"), "metadata")
    name = r.text(m.get("name"), "metadata.name")
    if not name:
        raise r.fail("metadata.name", "is required")
    ns = r.text(m.get("namespace"), "metadata.namespace", "default" if namespaced else "")
    ts = m.get("creationTimestamp")
    if ts is not None and not isinstance(ts, (str, datetime.date)):  # YAML reads a bare timestamp as a datetime
        raise r.fail("metadata.creationTimestamp", f"expected a timestamp, got {type(ts).__name__}")
    return Meta(
        kind=kind,
        namespace=ns if namespaced else "",
        name=name,
        uid=r.text(m.get("uid"), "metadata.uid"),
        resource_version=r.text(m.get("resourceVersion"), "metadata.resourceVersion"),
        creation_timestamp=ts if isinstance(ts, str) else (ts.isoformat() if ts else ""),
        generation=r.integer(m.get("generation"), "metadata.generation"),
        labels=r.str_map(m.get("labels"), "metadata.labels"),
        annotations=r.str_map(m.get("annotations"), "metadata.annotations"),
    )


def _describe(raw: Mapping[str, Any]) -> str:
    kind = raw.get("kind", "?")
    meta = raw.get("metadata")
    m: Mapping[str, Any] = meta if isinstance(meta, Mapping) else {}
    ns, name = m.get("namespace"), m.get("name", "?")
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
