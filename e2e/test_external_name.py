"""e2e: an ExternalName Service as a backend, resolved by nginx and re-resolved while running."""

from __future__ import annotations

from .dns import DNSServer
from .harness import INGRESS_CLASS, LocalController


def test_external_name_is_resolved_and_followed(tmp_path, backends):
    port = backends.start("external")
    dns = DNSServer({"api.upstream.test": "127.0.0.1"}).start()
    ctl = LocalController(tmp_path, extra_args=["--resolver", f"127.0.0.1:{dns.port}"])
    ctl.write("00-class.yaml", INGRESS_CLASS)
    ctl.write("svc.yaml", f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: ext, namespace: default}}
        spec:
          type: ExternalName
          externalName: api.upstream.test
          ports: [{{name: http, port: {port}}}]
        """)
    ctl.write("ing.yaml", """\
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: ext, namespace: default}
        spec:
          ingressClassName: nginx
          rules:
          - host: ext.test
            http:
              paths:
              - {path: /, pathType: Prefix, backend: {service: {name: ext, port: {name: http}}}}
        """)
    try:
        ctl.start()
        r = ctl.get("ext.test", "/x")
        assert (r.status, r.backend) == (200, "external")
        assert r.json()["host"] == "api.upstream.test", "the upstream sees the external name as Host"
        assert dns.queries >= 1
        # the name moves to an address where nothing listens: nginx re-resolves after the TTL
        dns.records["api.upstream.test"] = "127.0.0.2"
        ctl.wait_for(lambda: ctl.get("ext.test").status == 502, timeout=10, what="re-resolution")
        dns.records["api.upstream.test"] = "127.0.0.1"
        ctl.wait_for(lambda: ctl.get("ext.test").status == 200, timeout=10, what="re-resolution back")
    finally:
        ctl.stop()
        dns.stop()
