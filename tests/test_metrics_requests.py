"""Request metrics: nginx's dump lines -> ingress-nginx's families (pure), bucket flags, and the
exact counter names."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ingressctl.metrics_compat import ExactCounter
from ingressctl.metrics_requests import (
    RequestMetricsOptions,
    parse_buckets,
    request_families,
    stub_status_families,
)

CTL = ("ingress", "ingressctl.io/ingress-controller", "pod-1")
LABELS = "a.test\t200\tGET\t\t/api default a web"  # host, status, method, canary, "path ns ingress service"


def _dump(*lines: tuple[str, str, str, float]) -> str:
    return "".join(f"{name}\t{slot}\t{labels}\t{value}\n" for name, slot, labels, value in lines)


def _samples(families: list, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for f in families for s in f.samples if s.name == name}


def test_requests_and_a_histogram_from_dump_lines() -> None:
    dump = _dump(("requests", "", LABELS, 5), ("request_duration_seconds", "1", LABELS, 2),
                 ("request_duration_seconds", "3", LABELS, 2), ("request_duration_seconds", "12", LABELS, 1),
                 ("request_duration_seconds", "s", LABELS, 20.5))
    fams = request_families(dump, RequestMetricsOptions(), CTL)
    (requests,) = _samples(fams, "nginx_ingress_controller_requests").values()
    assert requests == 5
    buckets = {dict(k)["le"]: v for k, v in _samples(fams, "nginx_ingress_controller_request_duration_seconds_bucket").items()}
    assert buckets["0.005"] == 2 and buckets["0.01"] == 2 and buckets["0.025"] == 4 and buckets["10.0"] == 4
    assert buckets["+Inf"] == 5
    assert list(_samples(fams, "nginx_ingress_controller_request_duration_seconds_count").values()) == [5]
    assert list(_samples(fams, "nginx_ingress_controller_request_duration_seconds_sum").values()) == [20.5]


def test_without_per_host_metrics_the_hosts_fold_into_one_series() -> None:
    other = LABELS.replace("a.test", "b.test", 1)
    dump = _dump(("requests", "", LABELS, 2), ("requests", "", other, 3))
    fams = request_families(dump, RequestMetricsOptions(per_host=False), CTL)
    samples = _samples(fams, "nginx_ingress_controller_requests")
    assert list(samples.values()) == [5] and dict(next(iter(samples)))["host"] == ""


def test_excluded_metrics_and_unreadable_lines_are_left_out() -> None:
    dump = _dump(("requests", "", LABELS, 1)) + "garbage\nrequests\t\ttoo\tfew\t1\n" + _dump(
        ("requests", "", LABELS.replace("/api default", "/api"), 1)) + _dump(
        ("bytes_sent", "1", LABELS, 1))
    fams = request_families(dump, RequestMetricsOptions(exclude=frozenset({"bytes_sent"})), CTL)
    names = {f.name for f in fams}
    assert "nginx_ingress_controller_bytes_sent" not in names and "nginx_ingress_controller_requests" in names
    assert sum(_samples(fams, "nginx_ingress_controller_requests").values()) == 1


@pytest.mark.parametrize("text", ["", "1,x", "2,1", "0,1", "1,1", ",".join(["1"] * 41)])
def test_bad_bucket_flags_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_buckets(text)


def test_bucket_flags_parse() -> None:
    assert parse_buckets("0.1, 0.5,2") == (0.1, 0.5, 2.0)


def test_stub_status_page() -> None:
    page = "Active connections: 3 \nserver accepts handled requests\n 10 9 42 \nReading: 0 Writing: 1 Waiting: 2 \n"
    fams = stub_status_families(page, CTL)
    current = {dict(k)["state"]: v for k, v in _samples(fams, "nginx_ingress_controller_nginx_process_connections").items()}
    assert current == {"active": 3, "reading": 0, "writing": 1, "waiting": 2}
    assert list(_samples(fams, "nginx_ingress_controller_nginx_process_requests_total").values()) == [42]
    assert stub_status_families("not a status page", CTL) == []


def test_counters_keep_ingress_nginx_names_without_total() -> None:
    r = CollectorRegistry()
    c = ExactCounter("nginx_ingress_controller_success", "reloads", ["pod"], r)
    c.inc(("p",))
    text = generate_latest(r).decode()
    assert 'nginx_ingress_controller_success{pod="p"} 1.0' in text and "_total" not in text
    assert "# TYPE nginx_ingress_controller_success untyped" in text
