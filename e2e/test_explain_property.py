"""explain agrees with nginx: the same requests go through a real nginx and through
`ingressctl explain`; the backend (or the status nginx answers itself) must be the same.

One world covers what explain reasons about: exact/prefix/regex paths, wildcard and
host-less rules, a conflict lost to an older Ingress, a refused Ingress, canary by header
and by cookie, a TLS host's HTTPS redirect, a Service without endpoints, an Ingress of
another class and a denylist. Requests are drawn from a seeded generator (hosts x paths x
headers, with paths nginx normalises), so a failure names a reproducible request.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingressctl.cli import build_parser
from ingressctl.commands.inputs import build_like_controller, class_filter, load_snapshot
from ingressctl.explain import explain, parse_request

from .annotation_kit import make_cert, started_controller, tls_secret
from .harness import Backends, LocalController, manifests_for_backends, request

SERVICES = ("web", "api", "docs", "canary", "old", "new", "wild", "fallback")
A = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, rules: str, created: str = "2026-01-01T00:00:00Z", annotations: str = "{}",
             cls: str = "nginx", extra: str = "", namespace: str = "shop") -> str:
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: "{created}", annotations: {annotations}}}
spec:
  ingressClassName: {cls}
{extra}  rules:
{rules}
"""


def _rule(host: str, *paths: tuple[str, str, str]) -> str:
    head = f"  - host: \"{host}\"\n    http:\n" if host else "  - http:\n"
    return head + "      paths:\n" + "".join(
        f"      - {{path: \"{p}\", pathType: {t}, backend: {{service: {{name: {s}, port: {{number: 80}}}}}}}}\n"
        for p, t, s in paths)


def world(ports: dict[str, int]) -> dict[str, str]:
    files = {f"svc-{s}.yaml": manifests_for_backends("shop", s, [ports[s]]) for s in SERVICES}
    files["svc-empty.yaml"] = "apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: shop}\n" \
                              "spec: {ports: [{name: http, port: 80}]}\n"
    files["class-theirs.yaml"] = ("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: theirs}\n"
                                  "spec: {controller: k8s.io/ingress-nginx}\n")
    files["tls.yaml"] = tls_secret("tls", make_cert("secure.example.com", dns="secure.example.com")) \
        .replace("namespace: default", "namespace: shop")
    files["ing.yaml"] = "---\n".join([
        _ingress("shop", _rule("shop.example.com", ("/", "Prefix", "web"), ("/api", "Prefix", "api"),
                               ("/api/v1/status", "Exact", "docs"), ("/docs/", "Prefix", "docs"))),
        _ingress("regex", _rule("re.example.com", ("/v[0-9]+/items", "ImplementationSpecific", "api"),
                                ("/v1/items/special/long", "ImplementationSpecific", "docs"),
                                ("/", "Prefix", "web")), annotations=f'{{"{A}use-regex": "true"}}'),
        _ingress("wild", _rule("*.apps.example.com", ("/", "Prefix", "wild"))),
        _ingress("old", _rule("shared.example.com", ("/", "Prefix", "old"), ("/empty", "Prefix", "empty")),
                 created="2025-06-01T00:00:00Z"),
        _ingress("new", _rule("shared.example.com", ("/", "Prefix", "new"), ("/only-new", "Prefix", "new")),
                 created="2026-03-01T00:00:00Z"),
        _ingress("main", _rule("canary.example.com", ("/", "Prefix", "web"))),
        _ingress("canary", _rule("canary.example.com", ("/", "Prefix", "canary")), created="2026-02-01T00:00:00Z",
                 annotations=f'{{"{A}canary": "true", "{A}canary-by-header": "X-Canary", '
                             f'"{A}canary-by-cookie": "beta"}}'),
        _ingress("refused", _rule("refused.example.com", ("/", "Prefix", "web")),
                 annotations=f'{{"{A}proxy-read-timeout": "forever"}}'),
        _ingress("secure", _rule("secure.example.com", ("/", "Prefix", "web")),
                 extra="  tls: [{hosts: [secure.example.com], secretName: tls}]\n"),
        _ingress("guarded", _rule("guarded.example.com", ("/", "Prefix", "web")),
                 annotations=f'{{"{A}denylist-source-range": "127.0.0.0/8"}}'),
        _ingress("theirs", _rule("theirs.example.com", ("/", "Prefix", "api")), cls="theirs"),
        _ingress("fallback", _rule("", ("/fallback", "Prefix", "fallback"))),
        _ingress("intruder", _rule("shop.example.com", ("/api/v1", "Prefix", "web")), namespace="evil",
                 created="2026-05-01T00:00:00Z"),
    ])
    files["svc-evil.yaml"] = manifests_for_backends("evil", "web", [ports["evil/web"]])
    return files


HOSTS = ("shop.example.com", "re.example.com", "a.apps.example.com", "a.b.apps.example.com", "apps.example.com",
         "shared.example.com", "canary.example.com", "refused.example.com", "secure.example.com",
         "guarded.example.com", "theirs.example.com", "unknown.example.com", "SHOP.example.com")
PATHS = ("/", "/api", "/api/", "/apix", "/api/v1/status", "/api/v1/status/", "/api/v1/x", "/docs", "/docs/x", "/v2/items",
         "/V3/items/x", "/v1/items/special/long/x", "/vx/items", "/empty", "/empty/a", "/only-new", "/fallback",
         "/fallback/x", "/a/../api/x", "//api//x", "/%61pi", "/x?q=1")
HEADERS = ((), ("X-Canary: always",), ("X-Canary: never",), ("Cookie: beta=always",), ("X-Canary: Always",),
           ("Cookie: a=1; beta=Always",), ("Cookie: beta=never; x=y",),
           ("Cookie: beta=never", "X-Canary: maybe"))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[LocalController, Backends]]:
    backends = Backends()
    ports = {s: backends.start(f"shop/{s}") for s in SERVICES}
    ports["evil/web"] = backends.start("evil/web")

    def ready(ctl: LocalController) -> bool:
        return request(ctl.http_port, "shop.example.com", "/api").backend == "shop/api"

    try:
        yield from ((ctl, backends) for ctl in started_controller(world(ports), ready,
                                                                   refused=frozenset({"shop/refused", "shop/new", "evil/intruder"})))
    finally:
        backends.stop()


def _explainer(ctl: LocalController) -> tuple[argparse.Namespace, object, object]:
    args = build_parser().parse_args(["explain", "--manifests", str(ctl.manifests), "http://x/"])
    snap, _ = load_snapshot(args)
    return args, snap, build_like_controller(args, snap)


def _mismatches(ctl: LocalController, requests: list[tuple[str, str, tuple[str, ...], bool]]) -> list[str]:
    """Each request through nginx and through explain (built from the controller's directory)."""
    args, snap, result = _explainer(ctl)
    out = []
    for host, path, headers, tls in requests:
        scheme = "https" if tls else "http"
        req = parse_request(f"{scheme}://{host}{path}", headers)
        e = explain(snap, result, req, class_filter(args), ctl.http_port, ctl.https_port)  # type: ignore[arg-type]
        got = ctl.get(host, path, tls=tls, headers=dict(h.split(": ", 1) for h in headers))
        if e.status is not None:
            ok = got.status == e.status and not got.backend
            want = f"status {e.status}"
        else:
            ok = got.status == 200 and e.backend is not None and got.backend == e.backend["service"]
            want = f"backend {e.backend}"
        if not ok:
            out.append(f"{scheme}://{host}{path} {headers}: explain says {want}, nginx answered "
                       f"{got.status} from {got.backend or 'nginx'}; reasons {e.reasons}")
    return out


def test_explain_matches_nginx(served: tuple[LocalController, Backends]) -> None:
    ctl, _ = served
    rng = random.Random(16)
    requests = [(h, p, (), False) for h in HOSTS for p in PATHS[:6]]
    requests += [(rng.choice(HOSTS), rng.choice(PATHS), rng.choice(HEADERS), rng.random() < 0.15) for _ in range(220)]
    mismatches = _mismatches(ctl, requests)
    assert not mismatches, "\n".join(mismatches[:10])


R_HOSTS = ("r1.example.com", "r2.example.com", "*.rw.example.com", "")
R_PATHS = (("/", "Prefix"), ("/api", "Prefix"), ("/api/v1", "Prefix"), ("/api", "Exact"), ("/static/", "Prefix"),
           ("/a/b", "Exact"), ("/docs", "Prefix"))
R_REGEX = ("/v[0-9]+/", "/api/.*/edit", "/img/[a-z]+[.]png", "/API")
R_REQ_HOSTS = ("r1.example.com", "r2.example.com", "x.rw.example.com", "x.y.rw.example.com", "rw.example.com",
               "nowhere.example.com")
R_REQ_PATHS = ("/", "/api", "/api/", "/api/v1", "/api/v1/x", "/api/x/edit", "/apiv1", "/static", "/static/a.css",
               "/a/b", "/a/b/", "/docs/x", "/v2/", "/V2/items", "/img/cat.png", "/api/../docs", "/API/x")


def random_world(rng: random.Random, n: int) -> str:
    """n random Ingresses over a few hosts, paths, types, regexes, namespaces and ages, plus canaries."""
    docs = []
    for i in range(n):
        ns = rng.choice(("shop", "shop", "evil"))
        regex = rng.random() < 0.25
        paths = []
        for _ in range(rng.randint(1, 3)):
            svc = "web" if ns == "evil" else rng.choice(SERVICES[:5])
            if regex:
                paths.append((rng.choice(R_REGEX), "ImplementationSpecific", svc))
            else:
                p, t = rng.choice(R_PATHS)
                paths.append((p, t, svc))
        ann = {f"{A}use-regex": "true"} if regex else {}
        if not regex and ns == "shop" and rng.random() < 0.15:
            ann = {f"{A}canary": "true", f"{A}canary-by-header": "X-Canary"}
        annotations = "{" + ", ".join(f'"{k}": "{v}"' for k, v in ann.items()) + "}"
        docs.append(_ingress(f"r{i}", _rule(rng.choice(R_HOSTS), *paths), namespace=ns, annotations=annotations,
                             created=f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T00:00:00Z"))
    return "---\n".join(docs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_explain_matches_nginx_on_random_worlds(served: tuple[LocalController, Backends], seed: int) -> None:
    ctl, _ = served
    rng = random.Random(seed)
    sentinel = _ingress(f"sentinel-{seed}", _rule(f"sentinel-{seed}.example.com", ("/", "Prefix", "docs")))
    ctl.write("random.yaml", random_world(rng, 14) + "---\n" + sentinel)
    ctl.wait_for(lambda: ctl.live_config_has(f"# sentinel-{seed}.example.com\n"), timeout=15,
                 what="the random world live")
    requests = [(rng.choice(R_REQ_HOSTS), rng.choice(R_REQ_PATHS), rng.choice(((), ("X-Canary: always",))), False)
                for _ in range(120)]
    mismatches = _mismatches(ctl, requests)
    assert not mismatches, "\n".join(mismatches[:10])


def test_explain_command_line_json(served: tuple[LocalController, Backends], tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    ctl, _ = served
    out = subprocess.run([sys.executable, "-m", "ingressctl.cli", "explain", "--manifests", str(ctl.manifests),
                          "http://refused.example.com/", "-o", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == 404 and doc["ingress"] is None and doc["backend"] is None
    assert any(r.startswith("no route: Ingress shop/refused was refused: InvalidAnnotation") for r in doc["reasons"])
