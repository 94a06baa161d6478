"""Golden rule dumps: tests/proxy_cases/<case>/input.yaml -> expected.iptables, expected.nft.

Each case is a folder named after what it shows. An optional first line
`# options: {json}` overrides ProxyOptions fields; the node is "n1" and the cluster CIDR
10.244.0.0/16 unless overridden. `pytest --update-golden` rewrites the expected files;
review the diff before committing it. e2e/test_proxy_golden_apply.py feeds the same files
to the kernel.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ingressctl.proxy.backends.base import FragmentBackend, ProxyOptions
from ingressctl.proxy.backends.iptables import IptablesBackend
from ingressctl.proxy.backends.nftables import NftablesBackend
from ingressctl.proxy.core.build import build_table
from ingressctl.sources.files import parse_file
from ingressctl.store import Snapshot

CASES_DIR = Path(__file__).parent / "proxy_cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "input.yaml").is_file())
BACKENDS: dict[str, type[FragmentBackend]] = {"iptables": IptablesBackend, "nft": NftablesBackend}


def case_options(case: str) -> ProxyOptions:
    first = (CASES_DIR / case / "input.yaml").read_text().splitlines()[0]
    opts = ProxyOptions(cluster_cidr="10.244.0.0/16")
    if first.startswith("# options:"):
        fields = json.loads(first.split(":", 1)[1])
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        opts = dataclasses.replace(opts, **fields)
    return opts


def render_case(case: str, backend: str) -> str:
    objects, errors, _ = parse_file(CASES_DIR / case / "input.yaml")
    assert not errors, errors
    table = build_table(Snapshot.of(objects), node_name="n1")
    return BACKENDS[backend](case_options(case)).render(table)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, backend: str, request: pytest.FixtureRequest) -> None:
    got = render_case(case, backend)
    expected = CASES_DIR / case / f"expected.{backend}"
    if request.config.getoption("--update-golden"):
        expected.write_text(got)
    assert expected.is_file(), f"{expected} missing: run pytest --update-golden"
    assert got == expected.read_text(), f"{case}/{backend}: rules differ (pytest --update-golden to accept)"


def test_cases_exist() -> None:
    assert len(CASES) >= 10
