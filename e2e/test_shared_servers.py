"""e2e: hosts whose server blocks differ only in name and backend share one block
(nginx/merge.py, issue 18), against real nginx: every host still reaches its own backend,
with its own labels in logs and metrics and its own certificate; a host with anything else
of its own keeps its own block; and the shared block follows changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.factory import tls_secret

from .annotation_kit import ingress, service, started_controller
from .harness import Backends, LocalController
from .test_gateway_local import _secret_yaml
from .test_request_metrics import P, _value
from .test_tls_certificates import DEFAULT_CN, cn

HOSTS = 34  # 17 with TLS and 17 without: each more than MIN_GROUP (16)


@pytest.fixture(scope="module")
def ctl() -> Iterator[LocalController]:
    b = Backends()
    try:
        manifests: dict[str, str] = {}
        for i in range(HOSTS):
            manifests[f"svc{i}.yaml"] = service(f"s{i}", [b.start(f"s{i}")])
            manifests[f"ing{i}.yaml"] = ingress(f"h{i}", f"h{i}.test", [("/", "Prefix", f"s{i}")],
                                                tls_secret=f"t{i}" if i % 2 else "")
            if i % 2:
                manifests[f"secret{i}.yaml"] = _secret_yaml(tls_secret(f"t{i}", f"h{i}.test"))
        # anything of its own (here a rewrite) keeps a host out of the shared block
        manifests["own.yaml"] = ingress("own", "own.test", [("/", "Prefix", "s0")], {"rewrite-target": "/x"})
        yield from started_controller(manifests, lambda c: c.get(f"h{HOSTS - 2}.test").status == 200)
    finally:
        b.stop()


def _conf(ctl: LocalController) -> str:
    return (ctl.state_dir / "nginx" / "nginx.conf").read_text()


def test_plain_hosts_share_blocks_and_others_keep_theirs(ctl: LocalController) -> None:
    conf = _conf(ctl)
    # one shared block for the hosts with TLS, one for those without (HSTS and the redirect differ)
    assert conf.count("hosts with the same block share it") == 2
    assert conf.count("server_name own.test;") == 1


def test_every_host_reaches_its_own_backend_with_its_own_labels(ctl: LocalController) -> None:
    for i in range(HOSTS):
        r = ctl.get(f"h{i}.test", "/p", tls=bool(i % 2))
        assert (r.status, r.backend) == (200, f"s{i}"), i
    assert ctl.get("own.test").status == 200
    log = ctl.log()
    for i in (0, 7, HOSTS - 2):
        assert f"[default-s{i}-80]" in log, "$proxy_upstream_name in the access log names the host's upstream"


def test_certificates_and_redirects_per_host(ctl: LocalController) -> None:
    for i in range(HOSTS):
        assert cn(ctl.https_port, f"h{i}.test") == (f"h{i}.test" if i % 2 else DEFAULT_CN), i
        r = ctl.get(f"h{i}.test", "/p")
        if i % 2:  # TLS hosts redirect plain HTTP, as their own blocks did
            assert r.status == 308 and r.headers["location"].startswith(f"https://h{i}.test"), i
        assert ctl.get(f"h{i}.test", "/p", tls=True).backend == f"s{i}"


def test_request_metrics_name_each_host_not_the_blocks_first(ctl: LocalController) -> None:
    before = {i: _value(ctl, P + "requests", host=f"h{i}.test", ingress=f"h{i}") for i in (2, 4)}
    for _ in range(3):
        ctl.get("h2.test", "/m")
    ctl.get("h4.test", "/m")
    ctl.wait_for(lambda: _value(ctl, P + "requests", host="h2.test", ingress="h2") == before[2] + 3, timeout=10,
                 what="h2's requests counted")
    assert _value(ctl, P + "requests", host="h4.test", ingress="h4", service="s4") == before[4] + 1


def test_a_host_that_changes_leaves_the_shared_block(ctl: LocalController) -> None:
    ctl.write("ing3.yaml", ingress("h3", "h3.test", [("/only", "Prefix", "s3")], tls_secret="t3"))
    ctl.wait_for(lambda: ctl.live_config_has("server_name h3.test;"), timeout=10, what="h3 in its own block")
    assert ctl.get("h3.test", "/only", tls=True).backend == "s3"
    assert ctl.get("h5.test", "/other", tls=True).backend == "s5", "the others still share theirs"


def test_a_host_with_its_own_block_logs_no_warning_per_request(ctl: LocalController) -> None:
    """Request metrics read $ingressctl_host, which only shared blocks set: elsewhere nginx
    must not warn of an uninitialized variable on every request."""
    for _ in range(3):
        assert ctl.get("own.test", "/w").status == 200
    ctl.wait_for(lambda: "GET /w" in ctl.log(), timeout=10, what="the requests logged")
    assert "uninitialized" not in ctl.log()
