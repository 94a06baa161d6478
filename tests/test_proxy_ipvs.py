"""ipvs mode: golden `ipvsadm-restore` renderings (tests/ipvs_cases/<case>/input.yaml ->
expected.ipvs; `pytest --update-golden` rewrites them), and the refusal on a kernel
without IPVS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ingressctl.cli import main
from ingressctl.proxy.backends.base import BackendUnavailable, ProxyOptions
from ingressctl.proxy.backends.ipvs import IpvsBackend
from ingressctl.proxy.core.build import build_table
from ingressctl.sources.files import parse_file
from ingressctl.store import Snapshot

CASES_DIR = Path(__file__).parent / "ipvs_cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "input.yaml").is_file())
NODE_IPS = ("192.168.1.10", "192.168.1.11")


def render_case(case: str) -> str:
    objects, errors, _ = parse_file(CASES_DIR / case / "input.yaml")
    assert not errors, errors
    table = build_table(Snapshot.of(objects), node_name="n1", node_ips=NODE_IPS)
    return IpvsBackend(ProxyOptions(), addresses=list).render(table)


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, request: pytest.FixtureRequest) -> None:
    got = render_case(case)
    expected = CASES_DIR / case / "expected.ipvs"
    if request.config.getoption("--update-golden"):
        expected.write_text(got)
    assert expected.is_file(), f"{expected} missing: run pytest --update-golden"
    assert got == expected.read_text(), f"{case}: ipvs rules differ (pytest --update-golden to accept)"


@pytest.mark.parametrize("case, must_contain", [
    ("clusterip-round-robin", ["-A -t 10.96.0.10:80 -s rr",
                               "-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1"]),
    ("scheduler-annotations", ["-A -t 10.96.0.20:80 -s sh -b sh-fallback,sh-port",
                               "-A -t 10.96.0.21:80 -s wlc"]),
    ("session-affinity-persistence", ["-A -t 10.96.0.60:80 -s rr -p 600"]),
    ("nodeport-loadbalancer-local-policy", ["-A -t 192.168.1.11:30080 -s rr",
                                            "# ip addr replace 192.0.2.10/32 dev ictl-ipvs0"]),
    ("udp-sctp-external-ips", ["-A -u 10.96.0.53:53 -s lc", "-A --sctp-service 198.51.100.53:3868 -s lc"]),
    ("unknown-scheduler-skipped", ["# skipped default/odd:http/tcp: unknown scheduler 'random'",
                                   "-A -t 10.96.0.71:80 -s rr"]),
])
def test_rendering_semantics(case: str, must_contain: Sequence[str]) -> None:
    lines = render_case(case).splitlines()
    for line in must_contain:
        assert any(x.startswith(line) for x in lines), f"{case}: no line {line!r}"


def test_local_policy_keeps_only_local_real_servers_for_external_traffic() -> None:
    text = render_case("nodeport-loadbalancer-local-policy")
    lb_block = text.split("-A -t 192.0.2.10:80")[1].split("#")[0]
    assert "10.244.1.30" in lb_block and "10.244.2.30" not in lb_block
    cluster_block = text.split("-A -t 10.96.0.30:80")[1].split("#")[0]
    assert "10.244.2.30" in cluster_block


def test_check_refuses_without_ipvs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingressctl.proxy.backends.ipvs.PROC_IPVS", "/nonexistent/ip_vs")
    backend = IpvsBackend(runner=lambda argv, stdin="": "")
    with pytest.raises(BackendUnavailable, match="IPVS is not available in this kernel"):
        backend.check()


def test_command_exits_with_one_line_without_ipvs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingressctl.proxy.backends.ipvs.PROC_IPVS", "/nonexistent/ip_vs")
    (tmp_path / "s.yaml").write_text((CASES_DIR / "clusterip-round-robin" / "input.yaml").read_text())
    assert main(["proxy", "--mode", "ipvs", "--manifests", str(tmp_path), "--once"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "IPVS is not available in this kernel" in err[0]


def test_dry_run_prints_ipvsadm_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.yaml").write_text((CASES_DIR / "session-affinity-persistence" / "input.yaml").read_text())
    assert main(["proxy", "--mode", "ipvs", "--manifests", str(tmp_path), "--dry-run",
                 "--scheduler", "wlc"]) == 0
    out = capsys.readouterr().out
    assert "-A -t 10.96.0.60:80 -s wlc -p 600" in out


def test_sync_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a sync would run on a kernel with IPVS (none here): addresses first, then one restore."""
    calls: list[tuple[str, str]] = []

    def runner(argv: Sequence[str], stdin: str = "") -> str:
        calls.append((" ".join(argv), stdin))
        if argv[:3] == ["ip", "-j", "addr"]:
            return '[{"addr_info": [{"local": "10.96.0.99"}, {"local": "10.96.0.10"}]}]'
        return ""
    monkeypatch.setattr(IpvsBackend, "_has_dummy", lambda self: True)
    objects, _, _ = parse_file(CASES_DIR / "clusterip-round-robin" / "input.yaml")
    table = build_table(Snapshot.of(objects), node_name="n1", node_ips=NODE_IPS)
    result = IpvsBackend(runner=runner, addresses=list).sync(table, None)
    assert [c for c, _ in calls] == ["ip -j addr show dev ictl-ipvs0", "ip -batch -", "ipvsadm --clear",
                                     "ipvsadm-restore"]
    assert calls[1][1] == "addr del 10.96.0.99/32 dev ictl-ipvs0\naddr replace 10.96.0.10/32 dev ictl-ipvs0\n"
    assert calls[3][1] == ("-A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1\n"
                           "-a -t 10.96.0.10:80 -r 10.244.2.2:8080 -m -w 1\n")
    assert result.rules_written == 3
