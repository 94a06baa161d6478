"""e2e: `ingressctl migrate to-gateway` with real nginx: the same requests before (Ingresses)
and after (the generated Gateway and HTTPRoutes, the Ingresses deleted) land on the same
backend or get the same answer from nginx."""

from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

from ingressctl.migrate.to_gateway import requests_for
from ingressctl.objects import parse_object
from tests.factory import tls_secret

from .harness import INGRESSCTL, ROOT, Backends, LocalController, Response, manifests_for_backends, request

A = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, host: str, paths: str, annotations: str = "{}", tls: str = "") -> str:
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, annotations: {annotations}}}
spec:
  ingressClassName: ingressctl
{tls}  rules:
  - host: {host}
    http:
      paths:
{paths}"""


def _path(path: str, service: str, ptype: str = "Prefix") -> str:
    return f"      - {{path: {path}, pathType: {ptype}, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}\n"


INGRESSES = "---\n".join([
    _ingress("shop", "shop.test", _path("/", "web") + _path("/api", "api") + _path("/health", "api", "Exact")),
    _ingress("shop-canary", "shop.test", _path("/api", "canary"),
             f'{{"{A}canary": "true", "{A}canary-by-header": "X-Canary", "{A}canary-by-cookie": "beta"}}'),
    _ingress("secure", "secure.test", _path("/", "web"), tls="  tls: [{hosts: [secure.test], secretName: secure-tls}]\n"),
    _ingress("moved", "old.test", _path("/", "web"), f'{{"{A}permanent-redirect": "https://new.test/landing"}}'),
    _ingress("vhost", "vhost.test", _path("/", "api"), f'{{"{A}upstream-vhost": "internal.test"}}'),
])


def _secret_yaml() -> str:
    import base64
    s = tls_secret("secure-tls", "secure.test")
    data = {k: base64.b64encode(v).decode() for k, v in s.data.items()}  # type: ignore[attr-defined]
    return ("apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\nmetadata: {name: secure-tls, namespace: default}\n"
            f"data: {{tls.crt: {data['tls.crt']}, tls.key: {data['tls.key']}}}\n")


def _answer(r: Response) -> tuple[int, str, str]:
    host = r.json().get("host", "") if r.status == 200 and r.backend else ""
    return r.status, r.backend or r.headers.get("location", ""), host


def test_requests_land_the_same_before_and_after_the_move(tmp_path) -> None:
    backends = Backends()
    ctl = LocalController(tmp_path / "ctl")
    ctl.write("00-class.yaml", "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: ingressctl}\n"
                               "spec: {controller: ingressctl.io/ingress-controller}\n")
    for name in ("web", "api", "canary"):
        ctl.write(f"svc-{name}.yaml", manifests_for_backends("default", name, [backends.start(name)]))
    ctl.write("tls.yaml", _secret_yaml())
    ctl.write("ingresses.yaml", INGRESSES)
    ctl.start()
    try:
        ctl.wait_for(lambda: ctl.get("vhost.test").backend == "api", 15, "Ingresses live")
        ingresses = [parse_object(d) for d in __import__("yaml").safe_load_all(INGRESSES)]
        requests = requests_for(ingresses)  # type: ignore[arg-type]
        assert len(requests) > 30

        def answers() -> dict[str, tuple[int, str, str]]:
            out = {}
            for url, headers in requests:
                parts = urlsplit(url)
                tls = parts.scheme == "https"
                r = request(ctl.https_port if tls else ctl.http_port, parts.hostname or "",
                            parts.path + (f"?{parts.query}" if parts.query else ""), tls=tls,
                            headers=dict(h.split(": ", 1) for h in headers))
                out[f"{url} {headers}"] = _answer(r)
            return out
        before = answers()
        proc = subprocess.run([*INGRESSCTL, "migrate", "to-gateway", "--manifests", str(ctl.manifests),
                               "--http-port", str(ctl.http_port), "--https-port", str(ctl.https_port),
                               "--gateway-namespace", "default"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "0 routed differently" in proc.stderr
        ctl.write("gateway.yaml", proc.stdout)
        ctl.remove("ingresses.yaml")
        ctl.wait_for(lambda: "gw_d_" in (ctl.state_dir / "nginx" / "nginx.conf").read_text()
                     and ctl.get("vhost.test").backend == "api", 15, "routes live")
        after = answers()
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        assert not changed, "\n".join(f"{k}: {b} -> {a}" for k, (b, a) in list(changed.items())[:10])
        assert before["http://old.test/ ()"][:2] == (301, "https://new.test/landing")
        assert before["http://secure.test/ ()"][0] == 308
        assert before["http://vhost.test/ ()"] == (200, "api", "internal.test")
    finally:
        ctl.stop()
        backends.stop()
