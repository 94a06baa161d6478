"""Host ownership between namespaces: who may add paths to a host, and who sets its server.

The oldest Ingress that names a host (in a rule or a TLS entry) makes its namespace the
host's owner. Another namespace may still add paths to that host, but only paths that can
never win a request one of the owner's paths matches, whatever the path types; server-level
settings (TLS certificate, client certificates, aliases, ...) come from the owner alone.

Design choice: the check is decided on nginx's own matching order, conservatively. An
Exact path wins its one URI over everything; a Prefix wins the URIs below it over shorter
prefixes, and loses to Exact and regex locations; a regex can match anything, so another
namespace's regex path is never allowed on an owned host, and an Exact path is refused
when the owner has a regex path.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..objects import Ingress

Path = tuple[str, str]  # (kind: exact | prefix | regex, normalised path)


def host_owners(ingresses: Iterable[Ingress]) -> dict[str, str]:
    """host -> namespace of the oldest Ingress naming it; `ingresses` come oldest first."""
    owners: dict[str, str] = {}
    for ing in ingresses:
        for host in [r.host for r in ing.rules] + [h for t in ing.tls for h in t.hosts]:
            if host:
                owners.setdefault(host, ing.meta.namespace)
    return owners


def _under(prefix: str, uri: str) -> bool:
    """Does the Prefix path `prefix` match `uri` (whole path elements)?"""
    return prefix == "/" or uri == prefix or uri.startswith(prefix + "/")


def steals(candidate: Path, owned: Iterable[Path], owner_matches_everything: bool) -> str:
    """Why `candidate` (another namespace's path) could win a request an owner's path matches,
    or "" when it cannot. `owner_matches_everything`: the owner serves unmatched paths too
    (its spec.defaultBackend)."""
    kind, path = candidate
    if owner_matches_everything:
        return "the owner's defaultBackend serves every path of the host"
    if kind == "regex":
        return "a regex path of another namespace could match any path of the host"
    for o_kind, o_path in owned:
        if kind == "exact" and o_kind == "regex":
            return f"the owner's regex path {o_path} may match {path}"
        if o_kind == "prefix" and _under(o_path, path):
            return f"the owner's path {o_path} matches {path}"
    return ""


__all__ = ["host_owners", "steals"]
