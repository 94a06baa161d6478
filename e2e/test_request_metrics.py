"""e2e: request metrics under ingress-nginx's names (issue 15), measured in nginx's log phase:
exact counters per Ingress path, status and method, histograms that count the same
requests, stub_status connection metrics, and a series count that does not grow with
10,000 random URIs, Host headers and methods.
"""

from __future__ import annotations

import http.client
import random
import string
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .annotation_kit import ScriptedServer, ingress, service, started_controller
from .harness import Backends, LocalController, wait_until

P = "nginx_ingress_controller_"


def _slow(seen: object) -> tuple[int, dict[str, str], bytes]:
    time.sleep(0.3)
    return 200, {}, b"slow"


@pytest.fixture(scope="module")
def ctl() -> Iterator[LocalController]:
    b = Backends()
    slow = ScriptedServer(_slow)
    try:
        manifests = {"svc.yaml": service("web", [b.start("web")]), "beta.yaml": service("beta", [b.start("beta")]),
                     "slow-svc.yaml": service("slow", [slow.port]),
                     "slow.yaml": ingress("slow", "slow.test", [("/", "Prefix", "slow")]),
                     "canary.yaml": ingress("canary", "a.test", [("/api", "Prefix", "beta")],
                                            {"canary": "true", "canary-by-header": "X-Canary"},
                                            created="2026-01-02T00:00:00Z"),
                     "a.yaml": ingress("a", "a.test", [("/api", "Prefix", "web")]),
                     "b.yaml": ingress("b", "b.test", [("/", "Prefix", "missing")])}
        yield from started_controller(manifests, lambda c: c.get("a.test", "/api").status == 200)
    finally:
        b.stop()
        slow.stop()


def _samples(ctl: LocalController, name: str) -> list[tuple[dict[str, str], float]]:
    _, text = ctl.status("/metrics")
    return [(dict(s.labels), s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == name]


def _value(ctl: LocalController, name: str, **labels: str) -> float:
    return sum(v for got, v in _samples(ctl, name) if all(got.get(k) == val for k, val in labels.items()))


def test_requests_are_counted_exactly_per_path_status_and_method(ctl: LocalController) -> None:
    for i in range(7):
        assert ctl.get("a.test", f"/api/items/{i}?q={i}").status == 200
    for _ in range(3):
        assert ctl.get("a.test", "/api/x", method="POST", body=b"12345").status == 200
    for _ in range(5):
        assert ctl.get("b.test", "/anything").status == 503
    common = {"namespace": "default", "ingress": "a", "service": "web", "host": "a.test", "path": "/api",
              "canary": ""}
    # each nginx worker moves its counts into shared memory once a second: wait for all of them
    expected = [((P + "requests", {"status": "200", "method": "GET", **common}), 7 + 1),  # + the readiness probe
                ((P + "requests", {"status": "200", "method": "POST", **common}), 3),
                ((P + "requests", {"status": "503", "ingress": "b", "host": "b.test", "path": "/", "method": "GET"}),
                 5)]
    wait_until(lambda: all(_value(ctl, name, **labels) >= n for (name, labels), n in expected), 5, "requests logged")
    for (name, labels), n in expected:
        assert _value(ctl, name, **labels) == n, (labels, n)
    assert _value(ctl, P + "request_duration_seconds_count", status="200", method="POST", **common) == 3
    assert _value(ctl, P + "response_duration_seconds_count", status="200", method="POST", **common) == 3
    assert _value(ctl, P + "response_duration_seconds_count", status="503", ingress="b") == 0  # no upstream
    assert _value(ctl, P + "request_duration_seconds_bucket", status="200", method="POST", le="+Inf", **common) == 3
    assert _value(ctl, P + "request_size_sum", status="200", method="POST", **common) > 3 * 5
    # a 404 where no path of a.test matches: counted without Ingress labels
    for _ in range(4):
        assert ctl.get("a.test", "/elsewhere").status == 404
    wait_until(lambda: _value(ctl, P + "requests", status="404", host="a.test") == 4, 5, "404s logged")
    assert _value(ctl, P + "requests", status="404", host="a.test", ingress="", path="/") == 4
    labels = next(got for got, _ in _samples(ctl, P + "requests"))
    assert {"controller_class", "controller_namespace", "controller_pod"} <= set(labels)


def test_slow_answers_and_large_bodies_land_in_their_buckets(ctl: LocalController) -> None:
    slow = {"ingress": "slow", "host": "slow.test", "path": "/", "status": "200", "method": "GET"}
    for _ in range(2):
        assert ctl.get("slow.test", "/x").status == 200
    big = {"ingress": "a", "path": "/api", "status": "200", "method": "POST"}
    assert ctl.get("a.test", "/api/upload", method="POST", body=b"x" * 200_000).status == 200
    wait_until(lambda: _value(ctl, P + "request_duration_seconds_count", **slow) == 2
               and _value(ctl, P + "response_duration_seconds_count", **slow) == 2, 5, "slow requests logged")
    assert _value(ctl, P + "request_duration_seconds_bucket", le="0.25", **slow) == 0  # 0.3 s each
    assert _value(ctl, P + "request_duration_seconds_bucket", le="0.5", **slow) == 2
    assert _value(ctl, P + "response_duration_seconds_bucket", le="0.25", **slow) == 0
    assert _value(ctl, P + "response_duration_seconds_bucket", le="+Inf", **slow) == 2
    wait_until(lambda: _value(ctl, P + "request_size_bucket", le="+Inf", **big) >= 4, 5, "upload logged")
    assert _value(ctl, P + "request_size_bucket", le="100.0", **big) < _value(ctl, P + "request_size_bucket",
                                                                            le="+Inf", **big)
    assert _value(ctl, P + "request_size_sum", **big) > 200_000


def test_the_canary_label_names_the_canary_only_when_it_answered(ctl: LocalController) -> None:
    for _ in range(2):
        assert ctl.get("a.test", "/api/c", headers={"X-Canary": "always"}).backend == "beta"
    wait_until(lambda: _value(ctl, P + "requests", canary="default-beta-80") == 2, 5, "canary requests logged")
    assert _value(ctl, P + "requests", canary="default-beta-80", ingress="a", path="/api", status="200") == 2


def test_nginx_connection_metrics_from_stub_status(ctl: LocalController) -> None:
    states = {got["state"] for got, _ in _samples(ctl, P + "nginx_process_connections")}
    assert states == {"active", "reading", "writing", "waiting"}
    assert _value(ctl, P + "nginx_process_requests_total") > 0
    assert _value(ctl, P + "nginx_process_connections_total", state="accepted") > 0
    assert _samples(ctl, "process_resident_memory_bytes")  # the controller's own process metrics
    assert _value(ctl, P + "nginx_process_num_procs") >= 2  # master and workers
    assert _value(ctl, P + "nginx_process_resident_memory_bytes") > 1 << 20
    assert _samples(ctl, P + "nginx_process_cpu_seconds_total")


def _random_requests(port: int, n: int, rng: random.Random) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for i in range(n):
            word = "".join(rng.choices(string.ascii_lowercase, k=8))
            host = rng.choice([f"{word}.test", "a.test", "b.test"])
            method = rng.choice(["GET", "POST", word.upper()])
            try:
                conn.request(method, f"/{word}/{i}?{word}={i}", headers={"Host": host})
                conn.getresponse().read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    finally:
        conn.close()


def test_random_uris_hosts_and_methods_do_not_grow_the_series(ctl: LocalController) -> None:
    rng = random.Random(15)
    _random_requests(ctl.http_port, 300, rng)
    wait_until(lambda: len(_samples(ctl, P + "requests")) == len(_samples(ctl, P + "requests")), 2, "settled")
    before = len(_samples(ctl, P + "requests")) + len(_samples(ctl, P + "request_duration_seconds_bucket"))
    _random_requests(ctl.http_port, 10_000, rng)
    after = len(_samples(ctl, P + "requests")) + len(_samples(ctl, P + "request_duration_seconds_bucket"))
    assert after == before, (before, after)
    methods = {got["method"] for got, _ in _samples(ctl, P + "requests")}
    hosts = {got["host"] for got, _ in _samples(ctl, P + "requests")}
    assert methods <= {"GET", "POST", "OTHER"} and hosts <= {"", "a.test", "b.test", "slow.test"}, (methods, hosts)
